"""Where the machine OS image (our guest, built from the recipe in isos/) lives and how a user gets it.

Searched, in order: $MACHINE_OS_DIR (one build folder); else the user's cache
(${MACHINE_OS_CACHE:-~/.cache/machine/machine-os}/latest) and the system-wide cache every user's `machine` reads
(${MACHINE_OS_SYSTEM_CACHE:-/var/cache/machine/machine-os}/latest, where `sudo machine os build` puts it), the
build of the installed recipe first. A published image (a tar bundle of one build, URL + sha256 from the catalogue
or MACHINE_OS_URL / MACHINE_OS_SHA256) is fetched by `machine os pull` through the verified, resumable download
cache and unpacked into the user's cache.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from machine.errors import ConfigError, ImageError, ImageNotFound

BUNDLE_FILES = ("manifest.json", "vmlinuz", "initrd.img", "machine-os.iso")
BOOT_FILES = ("vmlinuz", "initrd.img")
SYSTEM_CACHE_POSIX = "/var/cache/machine/machine-os"
HEX64 = frozenset("0123456789abcdef")


def user_cache() -> Path:
    """The user's build/download cache root: $MACHINE_OS_CACHE, else ~/.cache/machine/machine-os."""
    base = os.environ.get("MACHINE_OS_CACHE") or str(Path.home() / ".cache" / "machine" / "machine-os")
    return Path(base).expanduser()


def system_cache() -> Path:
    """The system-wide cache root every user's `machine` searches (a root build lands here)."""
    if os.environ.get("MACHINE_OS_SYSTEM_CACHE"):
        return Path(os.environ["MACHINE_OS_SYSTEM_CACHE"]).expanduser()
    if os.name == "nt":  # pragma: no cover - Windows
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "machine" / "machine-os"
    return Path(SYSTEM_CACHE_POSIX)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def default_build_cache() -> Path:
    """Where `machine os build`/`pull` write: the system-wide cache as root (so every user finds it), else the
    user's. A MACHINE_OS_CACHE set in the environment wins even as root: a root build meant for one cache must
    not move the `latest` every other user's machine boots."""
    if is_root() and not os.environ.get("MACHINE_OS_CACHE"):
        return system_cache()
    return user_cache()


def recipe_dir() -> Path:
    """The installed recipe (machine/isos in site-packages), else the checkout's isos/ folder."""
    from machine import packagedata

    return packagedata.folder("isos")


@functools.lru_cache(maxsize=1)
def recipe_hash() -> str | None:
    """The hash of the installed recipe (isos/build.py's own function); None when it cannot be read."""
    path = recipe_dir() / "build.py"
    try:
        spec = importlib.util.spec_from_file_location("machine_os_build_recipe", path)
        if spec is None or spec.loader is None:
            return None
        build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(build)
        return build.recipe_hash()
    except (ImportError, OSError, AttributeError, SyntaxError):
        return None


def is_build(d: Path) -> bool:
    return all((d / f).is_file() for f in BOOT_FILES) or (d / "machine-os.iso").is_file()


def candidates() -> list[Path]:
    """The folders searched for the image, in order (the first that holds a build wins): a build of the recipe
    this package carries (in the user's, then the system-wide cache), then each cache's `latest`."""
    if os.environ.get("MACHINE_OS_DIR"):
        return [Path(os.environ["MACHINE_OS_DIR"]).expanduser()]
    roots = [user_cache(), system_cache()]
    current = recipe_hash()
    exact = [r / current for r in roots if current and is_build(r / current)]
    return exact + [r / "latest" for r in roots]


def machine_os_dir() -> Path:
    """The folder holding the machine OS build in use (the first searched one that has a build, else the first)."""
    dirs = candidates()
    return next((d for d in dirs if is_build(d)), dirs[0])


# -- published image bundles ------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A published machine OS build: a tar of BUNDLE_FILES (the download cache's `Downloadable`)."""

    url: str
    sha256: str | None
    name: str = "machine-os"
    checksum_url: str | None = None
    checksum_algo: str = "sha256"
    ext: str = "tar"


def bundle(url: str, digest: str | None) -> Bundle:
    """A Bundle for `url` (http/https; `#sha256=HEX` accepted) and its pinned sha256 (required)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"The machine OS URL {url!r} is not an http(s) URL",
                          "Set MACHINE_OS_URL (or --url) to http(s)://HOST/PATH of a bundle made by machine os pack.")
    frag = urllib.parse.parse_qs(parsed.fragment).get("sha256", [None])[0]
    digest = (digest or frag or "").lower()
    if len(digest) != 64 or not set(digest) <= HEX64:
        raise ConfigError(f"No valid sha256 for the machine OS image at {url}",
                          "Give its 64-hex-digit sha256: MACHINE_OS_SHA256, --sha256, or URL#sha256=HEX.")
    return Bundle(url=parsed._replace(fragment="").geturl(), sha256=digest)


def pack(build: Path, out: Path) -> str:
    """Write the build in `build` as a publishable bundle `out` (uncompressed tar); its sha256."""
    missing = [f for f in BUNDLE_FILES if not (build / f).is_file()]
    if missing:
        raise ImageNotFound(f"{build} is not a complete machine OS build (missing {', '.join(missing)})",
                            "Build it first: machine os build")
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for f in BUNDLE_FILES:
            info = tar.gettarinfo(str(build / f), arcname=f)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(build / f, "rb") as fh:
                tar.addfile(info, fh)
    os.replace(tmp, out)
    return _sha256(out)


def install_bundle(tar_path: Path, cache: Path) -> Path:
    """Unpack a bundle into `cache`/<recipe hash> (checking each file against the manifest) and point `latest`
    at it; the build folder."""
    try:
        with tarfile.open(tar_path, "r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            bad = [n for n, m in members.items() if n not in BUNDLE_FILES or not m.isfile()]
            missing = [f for f in BUNDLE_FILES if f not in members]
            if bad or missing:
                raise ImageError(f"{tar_path} is not a machine OS bundle (unexpected {bad}, missing {missing})",
                                 "Point MACHINE_OS_URL at a bundle made by: machine os pack")
            manifest = json.loads(tar.extractfile(members["manifest.json"]).read())  # type: ignore[union-attr]
            rh = str(manifest.get("recipe_hash", ""))
            if not rh or not rh.isalnum():
                raise ImageError(f"{tar_path}: the manifest has no recipe hash", "Rebuild and repack the image.")
            cache.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f".pull-{rh}-", dir=cache))
            try:
                for f in BUNDLE_FILES:
                    src = tar.extractfile(members[f])
                    with open(work / f, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)  # type: ignore[arg-type]
                for f, meta in (manifest.get("files") or {}).items():
                    if f in BUNDLE_FILES and _sha256(work / f) != meta.get("sha256"):
                        raise ImageError(f"{tar_path}: {f} does not match the bundle's manifest",
                                         "The bundle is damaged: run machine os pull again.")
                os.chmod(work, 0o755)
                final = cache / rh
                if final.exists():
                    shutil.rmtree(final)
                work.rename(final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except (tarfile.TarError, ValueError, OSError) as e:
        raise ImageError(f"Cannot unpack the machine OS bundle {tar_path}: {e}",
                         "Run machine os pull again; if it keeps failing the published bundle is broken.") from e
    link_latest(cache, rh)
    return final


def link_latest(cache: Path, name: str) -> None:
    tmp = cache / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(name)
    os.replace(tmp, cache / "latest")


def builds() -> list[dict]:
    """Every build in the searched caches: folder, recipe hash, build date, size, whether it is `latest` and in use."""
    in_use = machine_os_dir().resolve() if is_build(machine_os_dir()) else None
    roots = [Path(os.environ["MACHINE_OS_DIR"]).expanduser().parent] if os.environ.get("MACHINE_OS_DIR") else []
    rows, seen = [], set()
    for root in roots + [user_cache(), system_cache()]:
        try:
            entries = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            continue
        latest = _resolved_name(root / "latest")
        for d in entries:
            if d.resolve() in seen or not is_build(d):
                continue
            seen.add(d.resolve())
            manifest = read_manifest(d)
            rows.append({"path": str(d), "recipe_hash": manifest.get("recipe_hash", d.name),
                         "version": manifest.get("version", ""), "built": manifest.get("build_date", ""),
                         "size": sum(f.stat().st_size for f in d.iterdir() if f.is_file()),
                         "latest": d.name == latest, "in_use": d.resolve() == in_use})
    return rows


def _resolved_name(d: Path) -> str:
    try:
        return d.resolve().name
    except OSError:
        return ""


def read_manifest(d: Path) -> dict:
    try:
        data = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def build_command(cache: Path, force: bool) -> list[str]:
    """The command that builds the installed recipe into `cache`."""
    return [sys.executable, str(recipe_dir() / "build.py"), "--cache", str(cache), *(["--force"] if force else [])]
