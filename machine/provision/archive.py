"""Engine archives, uploaded to machines over SFTP, so a machine needs no internet access of its own and
every machine gets the same bytes.

- `--engine-version V`: the static docker-V.tgz from download.docker.com, cached on this host
  (`<store>/cache/engine/`).
- `--engine-archive PATH`: a file or directory on this host: Docker's static archive (members docker/dockerd,
  docker/containerd, ...), or an offline bundle of the distribution's packages (a directory, .tar or .tar.gz
  of .deb, .rpm or .apk files, or one package file) that the machine's package tool installs without network.
"""

from __future__ import annotations

import io
import posixpath
import re
import shutil
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from machine.atomicfile import ensure_dir
from machine.errors import DownloadError, Unsupported, UsageError

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
        raise Unsupported(f"No static engine archive for architecture {arch!r}", "Use x86_64 or aarch64 machines.")
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
        raise DownloadError(f"Could not download the engine archive {url}: {e}",
                            f"Download it yourself and save it as {path}, then retry.") from None
    return path


# -- --engine-archive PATH: a local static archive or an offline package bundle --------------------------------
PACKAGE_TYPES = {".deb": "deb", ".rpm": "rpm", ".apk": "apk"}
OS_PACKAGE_TYPE = {"debian": "deb", "ubuntu": "deb", "fedora": "rpm", "rhel": "rpm", "alpine": "apk"}
STATIC_MEMBER = "docker/dockerd"
_ELF_MACHINE = {0x3E: "x86_64", 0xB7: "aarch64"}
_WHAT = ("Give Docker's static archive (docker-VERSION.tgz) or an offline bundle: a directory, .tar or .tar.gz "
         "of the engine's .deb, .rpm or .apk packages.")


@dataclass(frozen=True)
class LocalArchive:
    """What `--engine-archive PATH` holds: kind "static" (docker/dockerd, ... -> /usr/local/bin) or
    "packages" (`package_type` deb/rpm/apk, `packages` their file names)."""

    path: Path
    kind: str
    package_type: str = ""
    packages: tuple[str, ...] = ()
    arch: str = ""  # of the static archive's dockerd, when it is an ELF file we know


def _package_type(name: str) -> str | None:
    return PACKAGE_TYPES.get(PurePosixPath(name).suffix.lower())


def _bundle(path: Path, names: list[str]) -> LocalArchive:
    names = sorted(set(names))
    types = sorted({t for n in names if (t := _package_type(n))})
    if not types:
        raise UsageError(f"--engine-archive {path}: no engine and no .deb/.rpm/.apk packages in it", _WHAT)
    if len(types) > 1:
        raise UsageError(f"--engine-archive {path} mixes package types ({', '.join('.' + t for t in types)})",
                         "One bundle holds the packages of one OS family: .deb, .rpm or .apk.")
    return LocalArchive(path, "packages", types[0], tuple(n for n in names if _package_type(n)))


def inspect_local(value: str | Path) -> LocalArchive:
    """Classify `--engine-archive` (on this host) or raise a UsageError saying what is wrong."""
    path = Path(value).expanduser().absolute()
    if not path.exists():
        raise UsageError(f"--engine-archive {path}: no such file or directory", _WHAT)
    if path.is_dir():
        return _bundle(path, [p.name for p in path.iterdir() if p.is_file()])
    if _package_type(path.name):
        return LocalArchive(path, "packages", _package_type(path.name) or "", (path.name,))
    try:
        with tarfile.open(path) as tar:
            names = []
            for m in tar:  # streams: a static archive is recognised at its first members
                name = posixpath.normpath(m.name).lstrip("/")
                if name == STATIC_MEMBER and m.isfile():
                    head = (tar.extractfile(m) or io.BytesIO()).read(20)
                    arch = _ELF_MACHINE.get(int.from_bytes(head[18:20], "little"), "") if head[:4] == b"\x7fELF" else ""
                    return LocalArchive(path, "static", arch=arch)
                if m.isfile():
                    names.append(posixpath.basename(name))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UsageError(f"--engine-archive {path} is not a readable tar archive or package: {e}", _WHAT) from None
    return _bundle(path, names)


def check_fits(archive: LocalArchive, family: str, arch: str, machine: str) -> None:
    """A MachineError when the archive cannot install on a machine of OS `family` and `uname -m` `arch`."""
    if archive.kind == "static":
        want = ARCHES.get(arch, arch)
        if archive.arch and archive.arch != want:
            raise UsageError(f"--engine-archive {archive.path} is built for {archive.arch}, but {machine!r} "
                             f"is {want}", f"Use Docker's static archive for {want}.")
        return
    want = OS_PACKAGE_TYPE.get(family)
    if want is None:
        raise UsageError(f"{machine!r} runs {family}, which is not installed from packages",
                         "Leave --engine-archive out for this machine.")
    if archive.package_type != want:
        raise UsageError(f"--engine-archive {archive.path} holds .{archive.package_type} packages, but {machine!r} "
                         f"runs {family}, which installs .{want} packages",
                         f"Make a bundle of .{want} packages for that release, or use Docker's static archive.")


def package_files(archive: LocalArchive) -> Iterator[tuple[str, bytes]]:
    """(file name, content) of each package of a bundle, one at a time."""
    if archive.path.is_dir() or _package_type(archive.path.name):
        base = archive.path if archive.path.is_dir() else archive.path.parent
        for name in archive.packages:
            yield name, (base / name).read_bytes()
        return
    seen: set[str] = set()
    with tarfile.open(archive.path) as tar:
        for m in tar:
            name = posixpath.basename(m.name)
            if m.isfile() and name in archive.packages and name not in seen:
                seen.add(name)
                yield name, (tar.extractfile(m) or io.BytesIO()).read()


def offline_install_command(package_type: str, directory: str, policy_rc_d: str) -> str:
    """The shell command that installs every package in `directory` (a quoted guest path) without network.

    deb: apt-get takes local files and fetches nothing (no `update`); dpkg -i where there is no apt-get. A
    temporary policy-rc.d (unless the host has one) keeps the packages from starting the engine with their
    own flags: it starts once, configured. rpm: dnf with every repository disabled, else rpm -U.
    apk: apk add --no-network."""
    if package_type == "deb":
        p = policy_rc_d
        return (f"export DEBIAN_FRONTEND=noninteractive; made=; if [ ! -e {p} ]; then mkdir -p $(dirname {p}) && "
                f"printf '#!/bin/sh\\nexit 101\\n' >{p} && chmod 755 {p} && made=1; fi; "
                f"if command -v apt-get >/dev/null; then apt-get -o DPkg::Lock::Timeout=300 install -y -q "
                f"--no-install-recommends {directory}/*.deb; else dpkg -i {directory}/*.deb; fi; rc=$?; "
                f"[ -n \"$made\" ] && rm -f {p}; exit $rc")
    if package_type == "rpm":
        return (f"if command -v dnf >/dev/null; then dnf install -y --disablerepo='*' {directory}/*.rpm; "
                f"else rpm -Uvh --replacepkgs {directory}/*.rpm; fi")
    if package_type == "apk":
        return f"apk add --no-network {directory}/*.apk"
    raise ValueError(package_type)
