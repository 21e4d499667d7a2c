"""Boot images: the catalogue (isos/images.yaml), name/URL/path resolution, and a verified,
resumable, content-addressed download cache (`<cache>/images/sha256-<digest>.<ext>`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from machine.atomicfile import ensure_dir, write_atomic
from machine.errors import ConfigError, MachineError, NotFound
from machine.filelock import FileLock

log = logging.getLogger("machine.images")

FORMATS = ("qcow2", "raw", "iso", "kernel+initrd")
SEEDS = ("nocloud", "machine-os")
ALGOS = ("sha256", "sha512")
BUILD_COMMAND = "python3 isos/build.py"
USER_AGENT = "machine/0.1 (+https://github.com/docker/machine lineage)"
CHUNK = 1 << 20
NET_TIMEOUT = 30.0
LOCK_TIMEOUT = 6 * 3600.0  # another process may be downloading the same image

_EXTS = {".qcow2": "qcow2", ".img": "img", ".iso": "iso", ".raw": "raw"}
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Image:
    """A boot image: downloadable (`url`), a local file (`path`), or our locally built OS."""

    name: str
    format: str
    arch: str = "amd64"
    ssh_user: str = "root"
    seed: str = "nocloud"
    url: str | None = None
    sha256: str | None = None
    checksum_url: str | None = None
    checksum_algo: str = "sha256"
    description: str = ""
    aliases: tuple[str, ...] = ()
    local: bool = False
    path: Path | None = None  # a local image file, or the machine OS build directory
    kernel: Path | None = None
    initrd: Path | None = None
    iso: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ext(self) -> str:
        """File extension for the cache: from the URL when it has a known one, else the format."""
        suffix = Path(urllib.parse.urlparse(self.url or "").path).suffix.lower()
        return _EXTS.get(suffix) or {"qcow2": "qcow2", "iso": "iso"}.get(self.format, "raw")


# -- catalogue --------------------------------------------------------------------------------


def _catalogue_text() -> str:
    try:
        return (resources.files("machine.isos") / "images.yaml").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, TypeError):
        pass
    return (Path(__file__).parent.parent / "isos" / "images.yaml").read_text(encoding="utf-8")


def _entry(name: str, raw: Any) -> Image:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"image catalogue entry {name!r}: {why}", "Fix isos/images.yaml.")

    if not isinstance(raw, dict):
        raise bad("not a mapping")
    for key in ("format", "arch", "ssh_user", "seed"):
        if not raw.get(key):
            raise bad(f"missing {key!r}")
    if raw["format"] not in FORMATS:
        raise bad(f"format {raw['format']!r} is not one of {', '.join(FORMATS)}")
    if raw["seed"] not in SEEDS:
        raise bad(f"seed {raw['seed']!r} is not one of {', '.join(SEEDS)}")
    if bool(raw.get("local")) == bool(raw.get("url")):
        raise bad("needs exactly one of 'url' or 'local: true'")
    if raw.get("url") and not (raw.get("sha256") or raw.get("checksum_url")):
        raise bad("a downloadable image needs 'sha256' or 'checksum_url'")
    if raw.get("sha256") and not _HEX.match(str(raw["sha256"]).lower()):
        raise bad("sha256 is not 64 hex digits")
    if raw.get("checksum_algo", "sha256") not in ALGOS:
        raise bad(f"checksum_algo must be one of {', '.join(ALGOS)}")
    return Image(
        name=name,
        format=raw["format"],
        arch=raw["arch"],
        ssh_user=raw["ssh_user"],
        seed=raw["seed"],
        url=raw.get("url"),
        sha256=str(raw["sha256"]).lower() if raw.get("sha256") else None,
        checksum_url=raw.get("checksum_url"),
        checksum_algo=raw.get("checksum_algo", "sha256"),
        description=raw.get("description", ""),
        aliases=tuple(raw.get("aliases") or ()),
        local=bool(raw.get("local")),
    )


def load_catalogue(text: str | None = None) -> dict[str, Image]:
    """The known images by name (aliases not included; see `lookup`)."""
    try:
        data = yaml.safe_load(text if text is not None else _catalogue_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"image catalogue is not valid YAML: {e}", "Fix isos/images.yaml.") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise ConfigError("image catalogue has no 'images' mapping", "Fix isos/images.yaml.")
    return {name: _entry(name, raw) for name, raw in data["images"].items()}


def lookup(name: str, catalogue: dict[str, Image] | None = None) -> Image | None:
    """A catalogue entry by name or alias, or None."""
    catalogue = load_catalogue() if catalogue is None else catalogue
    if name in catalogue:
        return catalogue[name]
    return next((img for img in catalogue.values() if name in img.aliases), None)


# -- the locally built machine OS -------------------------------------------------------------


def machine_os_dir() -> Path:
    """Where the built machine OS lives: $MACHINE_OS_DIR, else <cache>/latest."""
    if os.environ.get("MACHINE_OS_DIR"):
        return Path(os.environ["MACHINE_OS_DIR"]).expanduser()
    base = os.environ.get("MACHINE_OS_CACHE") or str(Path.home() / ".cache" / "machine" / "machine-os")
    return Path(base).expanduser() / "latest"


def _os_image(d: Path, template: Image | None) -> Image | None:
    kernel, initrd, iso = d / "vmlinuz", d / "initrd.img", d / "machine-os.iso"
    boot = kernel.is_file() and initrd.is_file()
    if not (boot or iso.is_file()):
        return None
    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    base = template or Image(name="machine-os", format="kernel+initrd", ssh_user="root", seed="machine-os")
    return replace(
        base,
        format="kernel+initrd" if boot else "iso",
        local=True,
        path=d,
        kernel=kernel if boot else None,
        initrd=initrd if boot else None,
        iso=iso if iso.is_file() else None,
        manifest=manifest if isinstance(manifest, dict) else {},
    )


def default_image() -> Image:
    """The locally built machine OS; a MachineError naming the build command when it is missing."""
    d = machine_os_dir()
    found = _os_image(d, lookup("machine-os"))
    if found is None:
        raise MachineError(
            f"The machine OS image is not built (looked in {d})",
            f"Build it with: {BUILD_COMMAND}  (or set MACHINE_OS_DIR to a folder holding "
            "vmlinuz, initrd.img and machine-os.iso, or pass --image debian-12)",
        )
    return found


# -- resolve ----------------------------------------------------------------------------------


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0x8001)
        cd = f.read(5)
    if head == b"QFI\xfb":
        return "qcow2"
    if cd == b"CD001":
        return "iso"
    return "raw"


def resolve(spec: str, catalogue: dict[str, Image] | None = None) -> Image:
    """A catalogue name or alias, an http(s) URL (optionally `#sha256=<hex>`), or a local path."""
    entry = lookup(spec, catalogue)
    if entry is not None:
        return default_image() if entry.local else entry
    parsed = urllib.parse.urlparse(spec)
    if parsed.scheme in ("http", "https"):
        frag = urllib.parse.parse_qs(parsed.fragment)
        digest = (frag.get("sha256") or [None])[0]
        if digest is not None and not _HEX.match(digest.lower()):
            raise ConfigError(f"bad sha256 in {spec!r}", "Write it as URL#sha256=<64 hex digits>.")
        url = parsed._replace(fragment="").geturl()
        img = Image(name=Path(parsed.path).name or parsed.netloc, format="raw", url=url, sha256=digest)
        return replace(img, format={"iso": "iso", "raw": "raw"}.get(img.ext, "qcow2"))
    path = Path(parsed.path if parsed.scheme == "file" else spec).expanduser()
    if path.is_dir():
        found = _os_image(path, lookup("machine-os", catalogue))
        if found:
            return found
        raise NotFound(f"{path} holds no vmlinuz+initrd.img or machine-os.iso", f"Build it with: {BUILD_COMMAND}")
    if path.is_file():
        return Image(name=path.name, format=_sniff(path), path=path.resolve())
    names = ", ".join(sorted(load_catalogue() if catalogue is None else catalogue))
    raise NotFound(
        f"No such image: {spec!r}",
        f"Use one of: {names}; an http(s) URL; or the path of a local image file.",
    )


# -- download cache ---------------------------------------------------------------------------


class _Report:
    """A progress bar on a TTY; otherwise a few plain lines; nothing when disabled."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.last, self.quarter, self.start = 0.0, -1, time.monotonic()

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        mib = done / (1 << 20)
        if self.tty:
            now = time.monotonic()
            if now - self.last < 0.1 and done != total:
                return
            self.last = now
            rate = mib / max(now - self.start, 1e-6)
            pct = f"{100 * done // total:3d}% " if total else ""
            size = f"/{total / (1 << 20):.1f}" if total else ""
            print(f"\r{self.label}: {pct}{mib:.1f}{size} MiB {rate:.1f} MiB/s ", end="", file=sys.stderr, flush=True)
        elif total:
            q = 4 * done // total
            if q > self.quarter:
                self.quarter = q
                print(f"{self.label}: {25 * q}% of {total / (1 << 20):.1f} MiB", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


def _get(url: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(req, timeout=NET_TIMEOUT)  # noqa: S310 - http(s) only, checked


def parse_checksums(text: str, filename: str) -> str | None:
    """The digest for `filename` in a SHA256SUMS / SHA512SUMS (GNU or BSD style) file."""
    for line in text.splitlines():
        m = re.match(r"^([0-9a-fA-F]{64,128})\s+[ *]?(?:\./)?(\S.*?)\s*$", line)
        if m and m.group(2) == filename:
            return m.group(1).lower()
        m = re.match(r"^SHA\d+\s*\((?:\./)?(.+)\)\s*=\s*([0-9a-fA-F]{64,128})\s*$", line)
        if m and m.group(1) == filename:
            return m.group(2).lower()
    return None


def expected_digest(image: Image) -> tuple[str, str] | None:
    """(algorithm, hex digest) the download must match; None for an unverified URL image."""
    if image.sha256:
        return "sha256", image.sha256
    if not image.checksum_url:
        return None
    filename = Path(urllib.parse.urlparse(image.url or "").path).name
    try:
        with _get(image.checksum_url) as resp:
            text = resp.read(4 << 20).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        raise MachineError(
            f"Could not fetch the checksum list {image.checksum_url}: {e}",
            "Check the network connection and try again.",
        ) from e
    digest = parse_checksums(text, filename)
    if digest is None:
        raise MachineError(
            f"{image.checksum_url} lists no checksum for {filename}",
            "The image was probably renamed upstream; update isos/images.yaml.",
        )
    return image.checksum_algo, digest


class _Incomplete(OSError):
    pass


def _download_once(url: str, part: Path, report: _Report) -> None:
    have = part.stat().st_size if part.exists() else 0
    meta_path = part.with_name(part.name + ".json")
    validator = ""
    if have:
        try:
            validator = json.loads(meta_path.read_text()).get("validator", "")
        except (OSError, ValueError):
            validator = ""
    headers = {"Range": f"bytes={have}-"} if have else {}
    if have and validator:
        headers["If-Range"] = validator
    try:
        resp = _get(url, headers)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # our part is bigger than the file: start again
            part.unlink(missing_ok=True)
            raise _Incomplete(f"{url}: range not satisfiable, restarting") from e
        raise
    with resp:
        m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if have and resp.status == 206 and m and int(m.group(1)) == have:
            mode, total = "ab", int(m.group(2)) if m.group(2) != "*" else None
            log.info("resuming %s at %d bytes", url, have)
        else:
            mode, have = "wb", 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified") or ""
        write_atomic(meta_path, json.dumps({"url": url, "validator": validator}))
        with open(part, mode) as f:
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                have += len(chunk)
                report(have, total)
            f.flush()
            os.fsync(f.fileno())
    if total is not None and have != total:
        raise _Incomplete(f"connection closed after {have} of {total} bytes")


def _download(url: str, part: Path, report: _Report, attempts: int) -> None:
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, part, report)
            return
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500 and e.code != 408 and e.code != 429:
                raise MachineError(
                    f"Download of {url} failed: HTTP {e.code} {e.reason}",
                    "Check the image URL; the catalogue entry may be out of date.",
                ) from e
            last = e
        except (OSError, http.client.HTTPException) as e:
            last = e
        log.warning("download of %s interrupted (attempt %d/%d): %s", url, attempt, attempts, last)
        if attempt < attempts:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 10.0))
    raise MachineError(
        f"Download of {url} failed after {attempts} attempt(s): {last}",
        "Check the network connection and run the command again; the partial download is kept and resumed.",
    )


def _hash_file(path: Path, algos: set[str]) -> dict[str, str]:
    hashers = {a: hashlib.new(a) for a in algos | {"sha256"}}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _index_path(images: Path) -> Path:
    return images / "index.json"


def read_index(cache_dir: Path) -> dict[str, dict[str, Any]]:
    """The cache index: URL -> {"sha256", "file", "size", "fetched"}."""
    try:
        data = json.loads(_index_path(Path(cache_dir) / "images").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _record(images: Path, url: str, final: Path, digest: str) -> None:
    with FileLock(images / ".index.lock", timeout=60.0, what="the image cache index"):
        index = read_index(images.parent)
        index[url] = {"sha256": digest, "file": final.name, "size": final.stat().st_size, "fetched": int(time.time())}
        write_atomic(_index_path(images), json.dumps(index, indent=2, sort_keys=True) + "\n", mode=0o644)


def cached(image: Image, cache_dir: Path) -> Path | None:
    """The cached file for `image`, without touching the network; None when not cached."""
    if not image.url:
        return None
    images = Path(cache_dir) / "images"
    digest = image.sha256 or read_index(cache_dir).get(image.url, {}).get("sha256")
    if digest and _HEX.match(digest):
        path = images / f"sha256-{digest}.{image.ext}"
        if path.is_file():
            return path
    return None


def fetch(image: Image, cache_dir: Path, *, progress: bool = True, refresh: bool = False, attempts: int = 3) -> Path:
    """The image as a local file (or, for the machine OS, its build directory), downloading it
    into `cache_dir/images` when needed. `refresh` re-checks a rolling URL's checksum list."""
    if not image.url:
        if image.path is None or not image.path.exists():
            raise NotFound(f"Image {image.name!r} has no local file", f"Build it with: {BUILD_COMMAND}")
        return image.path
    if not refresh and (hit := cached(image, cache_dir)):
        return hit
    images = ensure_dir(Path(cache_dir) / "images", 0o755)
    key = hashlib.sha256(image.url.encode()).hexdigest()[:16]
    with FileLock(images / f".{key}.lock", timeout=LOCK_TIMEOUT, what=f"the download of {image.url}"):
        if not refresh and (hit := cached(image, cache_dir)):  # another process fetched it meanwhile
            return hit
        expected = expected_digest(image)
        if expected and expected[0] == "sha256":
            final = images / f"sha256-{expected[1]}.{image.ext}"
            if final.is_file():
                _record(images, image.url, final, expected[1])
                return final
        if expected is None:
            log.warning("no checksum known for %s: the download cannot be verified", image.url)
        part = images / f".{key}.{image.ext}.part"
        report = _Report(f"Downloading {image.name}", progress)
        try:
            _download(image.url, part, report, attempts)
        finally:
            report.done()
        digests = _hash_file(part, {expected[0]} if expected else set())
        if expected and digests[expected[0]] != expected[1]:
            part.unlink(missing_ok=True)
            part.with_name(part.name + ".json").unlink(missing_ok=True)
            raise MachineError(
                f"Checksum mismatch for {image.url}: expected {expected[0]} {expected[1]}, got {digests[expected[0]]}",
                "The download was corrupted or the file changed upstream; the bad file was deleted. "
                "Run the command again; if it keeps failing, the catalogue entry may be out of date.",
            )
        final = images / f"sha256-{digests['sha256']}.{image.ext}"
        os.replace(part, final)
        part.with_name(part.name + ".json").unlink(missing_ok=True)
        _record(images, image.url, final, digests["sha256"])
        return final
