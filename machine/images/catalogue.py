"""Boot images: the catalogue (isos/images.yaml), name/URL/path resolution, and `fetch`, which
hands URL images to the verified, resumable download cache in `machine.images.downloadcache`.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from machine.errors import ConfigError, ImageNotFound, NotFound

# the download cache's public names (`as` re-exports) stay importable from here, where callers find them
from machine.images.downloadcache import SHA256_HEX as _HEX
from machine.images.downloadcache import cached as cached
from machine.images.downloadcache import download
from machine.images.downloadcache import expected_digest as expected_digest
from machine.images.downloadcache import parse_checksums as parse_checksums
from machine.images.downloadcache import read_index as read_index

if TYPE_CHECKING:
    from machine.images import machineos

FORMATS = ("qcow2", "raw", "iso", "kernel+initrd")
SEEDS = ("nocloud", "machine-os")
ALGOS = ("sha256", "sha512")
BUILD_COMMAND = "machine os build"

_EXTS = {".qcow2": "qcow2", ".img": "img", ".iso": "iso", ".raw": "raw"}


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
    from machine import packagedata

    return packagedata.isos_text("images.yaml")


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
    if not raw.get("local") and not raw.get("url"):
        raise bad("needs 'url' or 'local: true'")
    if raw.get("local") and raw.get("url") and not raw.get("sha256"):
        raise bad("a published build of a local image ('local: true' with 'url') needs a pinned 'sha256'")
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
    """Where the built machine OS lives: $MACHINE_OS_DIR, else the user's or the system-wide cache's `latest`
    (see machine.images.machineos)."""
    from machine.images import machineos

    return machineos.machine_os_dir()


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
        url=None,  # the catalogue's url is the published bundle (machine os pull), not this build
        sha256=None,
        format="kernel+initrd" if boot else "iso",
        local=True,
        path=d,
        kernel=kernel if boot else None,
        initrd=initrd if boot else None,
        iso=iso if iso.is_file() else None,
        manifest=manifest if isinstance(manifest, dict) else {},
    )


def published_machine_os() -> machineos.Bundle | None:
    """The published image: MACHINE_OS_URL (+ MACHINE_OS_SHA256, or URL#sha256=...) over the catalogue's entry."""
    from machine.images import machineos

    url, digest = os.environ.get("MACHINE_OS_URL"), os.environ.get("MACHINE_OS_SHA256")
    if not url:
        entry = lookup("machine-os")
        url, digest = (entry.url, entry.sha256) if entry else (None, None)
    if not url:
        return None
    return machineos.bundle(url, digest)


def machine_os_hint() -> str:
    """What to do when no build is found: the ways to get the image, the one that fits this user first."""
    from machine.images import machineos

    pull = "machine os pull (downloads the published image into your cache)"
    if not published_machine_os():
        pull = "machine os pull --url URL --sha256 HEX (a published image bundle; or set MACHINE_OS_URL)"
    system = machineos.system_cache()
    build = (f"machine os build (as root it lands in {system}, which every user's machine searches)"
             if machineos.is_root() else
             f"sudo machine os build (root builds into {system}, which every user's machine searches; "
             "a build needs root)")
    return f"Get it with: {build}; or {pull}; or set MACHINE_OS_DIR to a build folder; or pass --image debian-12"


def default_image() -> Image:
    """The locally built machine OS; a MachineError saying how to get it when it is missing."""
    from machine.images import machineos

    d = machine_os_dir()
    found = _os_image(d, lookup("machine-os"))
    if found is None:
        searched = ", ".join(str(p) for p in machineos.candidates())
        raise ImageNotFound(f"The machine OS image is not built (looked in {searched})", machine_os_hint())
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
        raise NotFound(f"{path} holds no vmlinuz+initrd.img or machine-os.iso", f"Build one with: {BUILD_COMMAND}")
    if path.is_file():
        return Image(name=path.name, format=_sniff(path), path=path.resolve())
    names = ", ".join(sorted(load_catalogue() if catalogue is None else catalogue))
    raise NotFound(
        f"No such image: {spec!r}",
        f"Use one of: {names}; an http(s) URL; or the path of a local image file.",
    )


# -- fetch ------------------------------------------------------------------------------------


def fetch(image: Image, cache_dir: Path, *, progress: bool = True, refresh: bool = False, attempts: int = 3) -> Path:
    """The image as a local file (or, for the machine OS, its build directory), downloading it
    into `cache_dir/images` when needed. `refresh` re-checks a rolling URL's checksum list."""
    if not image.url:
        if image.path is None or not image.path.exists():
            raise NotFound(f"Image {image.name!r} has no local file", f"Build it with: {BUILD_COMMAND}")
        return image.path
    return download(image, cache_dir, progress=progress, refresh=refresh, attempts=attempts)
