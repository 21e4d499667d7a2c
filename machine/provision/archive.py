"""Engine archives (`--engine-version`): the static docker-VERSION.tgz from download.docker.com, cached
on this host (`<store>/cache/engine/`) and uploaded to machines over SFTP, so each machine needs no
internet access of its own and every machine gets the same bytes."""

from __future__ import annotations

import re
import shutil
import urllib.request
from pathlib import Path

from machine.atomicfile import ensure_dir
from machine.errors import MachineError, UsageError

STATIC_URL = "https://download.docker.com/linux/static/stable/{arch}/docker-{version}.tgz"
_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?$")
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def archive_path(cache_dir: Path, version: str, arch: str) -> Path:
    return cache_dir / "engine" / f"docker-{version}-{ARCHES.get(arch, arch)}.tgz"


def engine_archive(cache_dir: Path, version: str, arch: str, timeout: float = 300.0) -> Path:
    """The cached archive for `version` on `arch`, downloaded first when missing. A file placed in the
    cache by hand (e.g. on an offline host) is used as is."""
    if not _VERSION.match(version):
        raise UsageError(f"Invalid --engine-version {version!r}", "Give a release such as 27.3.1.")
    norm = ARCHES.get(arch)
    if norm is None:
        raise MachineError(f"No static engine archive for architecture {arch!r}", "Use x86_64 or aarch64 machines.")
    arch = norm
    path = archive_path(cache_dir, version, arch)
    if path.is_file():
        return path
    ensure_dir(path.parent)
    url = STATIC_URL.format(arch=arch, version=version)
    part = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out)
        part.replace(path)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise MachineError(f"Could not download the engine archive {url}: {e}",
                           f"Download it yourself and save it as {path}, then retry.") from None
    return path
