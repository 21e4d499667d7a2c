"""The verified, resumable, content-addressed download cache behind `machine.images.catalogue`:
`<cache>/images/sha256-<digest>.<ext>` plus an index (URL -> digest) for rolling URLs.

It knows nothing of the catalogue: anything with the `Downloadable` attributes can be fetched.
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
from pathlib import Path
from typing import Any, Protocol

from machine.atomicfile import ensure_dir, write_atomic
from machine.errors import DownloadError
from machine.filelock import FileLock

log = logging.getLogger("machine.images.catalogue")

USER_AGENT = "machine/0.1 (+https://github.com/docker/machine lineage)"
CHUNK = 1 << 20
NET_TIMEOUT = 30.0
LOCK_TIMEOUT = 6 * 3600.0  # another process may be downloading the same image
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class Downloadable(Protocol):
    """What the cache needs of an image (`machine.images.catalogue.Image` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def checksum_url(self) -> str | None: ...
    @property
    def checksum_algo(self) -> str: ...
    @property
    def ext(self) -> str: ...


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


def expected_digest(image: Downloadable) -> tuple[str, str] | None:
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
        raise DownloadError(
            f"Could not fetch the checksum list {image.checksum_url}: {e}",
            "Check the network connection and try again.",
        ) from e
    digest = parse_checksums(text, filename)
    if digest is None:
        raise DownloadError(
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
                raise DownloadError(
                    f"Download of {url} failed: HTTP {e.code} {e.reason}",
                    "Check the image URL; the catalogue entry may be out of date.",
                ) from e
            last = e
        except (OSError, http.client.HTTPException) as e:
            last = e
        log.warning("download of %s interrupted (attempt %d/%d): %s", url, attempt, attempts, last)
        if attempt < attempts:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 10.0))
    raise DownloadError(
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


def cached(image: Downloadable, cache_dir: Path) -> Path | None:
    """The cached file for `image`, without touching the network; None when not cached."""
    if not image.url:
        return None
    images = Path(cache_dir) / "images"
    digest = image.sha256 or read_index(cache_dir).get(image.url, {}).get("sha256")
    if digest and SHA256_HEX.match(digest):
        path = images / f"sha256-{digest}.{image.ext}"
        if path.is_file():
            return path
    return None


def download(
    image: Downloadable, cache_dir: Path, *, progress: bool = True, refresh: bool = False, attempts: int = 3
) -> Path:
    """The cached file for `image` (which has a `url`), downloading and verifying it into
    `cache_dir/images` when needed. `refresh` re-checks a rolling URL's checksum list."""
    if not image.url:
        raise ValueError(f"image {image.name!r} has no url to download")
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
            raise DownloadError(
                f"Checksum mismatch for {image.url}: expected {expected[0]} {expected[1]}, got {digests[expected[0]]}",
                "The download was corrupted or the file changed upstream; the bad file was deleted. "
                "Run the command again; if it keeps failing, the catalogue entry may be out of date.",
            )
        final = images / f"sha256-{digests['sha256']}.{image.ext}"
        os.replace(part, final)
        part.with_name(part.name + ".json").unlink(missing_ok=True)
        _record(images, image.url, final, digests["sha256"])
        return final
