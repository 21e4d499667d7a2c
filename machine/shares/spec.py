"""Shared folders as the user names them: `--share HOST_PATH[:GUEST_PATH][:ro]`, the default share of the
user's home folder (docker-machine's habit: `/Users`, `C:\\Users` -> `/c/Users`), and their validation.

A share is saved in the machine config as {"host": ..., "guest": ..., "ro": bool}; the guest mounts share
number N from the device tag `machine<N>` (see `guest_entries`). Pure: no driver, no SSH.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from machine.errors import UsageError

TAG_PREFIX = "msh"
# Guest paths a share must not cover or hide. Trees: no share at, above or inside them (the guest's own system,
# the engine's data, the data disk). Paths: no share at or above them (the login user's home and keys, /tmp, /var),
# a share inside them is fine (/tmp/src, /var/www, /root/src).
RESERVED_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr",
                  "/var/lib/docker", "/var/lib/containerd", "/mnt/data")
RESERVED_PATHS = ("/root", "/tmp", "/var", "/home")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass(frozen=True)
class Share:
    host: str
    guest: str
    ro: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "guest": self.guest, "ro": self.ro}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Share:
        return cls(str(d["host"]), str(d["guest"]), bool(d.get("ro", False)))

    def __str__(self) -> str:
        return f"{self.host} -> {self.guest}{' (read-only)' if self.ro else ''}"


def guest_path_for(host: str) -> str:
    """The guest path a host folder appears at by default: the same path; `C:\\Users\\me` -> `/c/Users/me`."""
    if _DRIVE.match(host):
        win = PureWindowsPath(host)
        return "/" + win.drive[0].lower() + "/" + "/".join(win.parts[1:])
    return PurePosixPath(host).as_posix()


def parse(spec: str) -> Share:
    """`HOST_PATH[:GUEST_PATH][:ro|rw]`. A Windows drive letter (`C:\\x`) is part of the host path."""
    text = spec.strip()
    if not text:
        raise UsageError("--share needs a folder", "Example: --share ~/src or --share ~/src:/src:ro")
    drive = ""
    if _DRIVE.match(text):
        drive, text = text[:2], text[2:]
    parts = text.split(":")
    ro = False
    if len(parts) > 1 and parts[-1] in ("ro", "rw"):
        ro = parts.pop() == "ro"
    if len(parts) > 2:
        raise UsageError(f"--share {spec!r}: too many ':'",
                         "Write HOST_PATH[:GUEST_PATH][:ro], e.g. --share ~/src:/src:ro")
    host = drive + parts[0]
    if not parts[0]:
        raise UsageError(f"--share {spec!r}: the host folder is missing", "Example: --share ~/src:/src")
    host_path = Path(os.path.expanduser(host))
    guest = parts[1] if len(parts) == 2 and parts[1] else ""
    return Share(str(host_path), guest or guest_path_for(str(host_path.absolute())), ro)


def default_share(platform: str | None = None, home: Path | None = None) -> Share | None:
    """The share a machine gets unless --no-share: the user's home folder at the same path (Windows: C:\\Users at
    /c/Users, as docker-machine did). None when that path would hide a reserved guest path (a root user's /root)."""
    plat = platform or sys.platform
    if plat == "win32":
        host = os.environ.get("SystemDrive", "C:") + "\\Users"
    else:
        host = str(home or Path.home())
    share = Share(host, guest_path_for(host))
    return None if reserved_clash(share.guest) else share


def reserved_clash(guest: str) -> str:
    """The reserved guest path `guest` would equal, cover or sit inside ('' when none)."""
    g = PurePosixPath(guest)
    for r in RESERVED_TREES:
        rp = PurePosixPath(r)
        if g == rp or rp in g.parents or g in rp.parents:
            return r
    for r in RESERVED_PATHS:
        rp = PurePosixPath(r)
        if g == rp or g in rp.parents:
            return r
    return ""


def _overlaps(a: str, b: str, flavour: type) -> bool:
    pa, pb = flavour(a), flavour(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


def validate(shares: list[Share]) -> list[Share]:
    """Each host path an existing folder (made absolute), each guest path absolute and outside the reserved
    ones, and no two shares overlapping on either side. Raises UsageError naming the share."""
    out: list[Share] = []
    for s in shares:
        host = Path(s.host).expanduser()
        if not host.exists():
            raise UsageError(f"Shared folder {s.host} does not exist", "Create it first, or fix the path.")
        if not host.is_dir():
            raise UsageError(f"Shared folder {s.host} is not a folder", "Share the folder that holds it.")
        guest = s.guest
        if not guest.startswith("/") or ".." in PurePosixPath(guest).parts or "\n" in guest:
            raise UsageError(f"Guest path {guest!r} of share {s.host} is not an absolute path",
                             "Write it as /path/in/the/machine, e.g. --share ~/src:/src")
        clash = reserved_clash(guest)
        if clash:
            raise UsageError(f"Guest path {guest} of share {s.host} would cover the machine's own {clash}",
                             f"Mount it elsewhere, e.g. --share {s.host}:/host{guest if guest != '/' else ''}")
        out.append(Share(str(host.resolve()), str(PurePosixPath(guest)), s.ro))
    flavour = PureWindowsPath if sys.platform == "win32" else PurePosixPath
    for i, a in enumerate(out):
        for b in out[i + 1:]:
            if _overlaps(a.host, b.host, flavour):
                raise UsageError(f"Shared folders {a.host} and {b.host} overlap",
                                 "Share each folder once: drop the one inside the other.")
            if _overlaps(a.guest, b.guest, PurePosixPath):
                raise UsageError(f"Shares {a.host} and {b.host} overlap in the machine ({a.guest}, {b.guest})",
                                 "Give them guest paths that do not contain each other.")
    return out


def plan(given: tuple[str, ...] | list[str], no_share: bool, default: Share | None = None
         ) -> tuple[list[Share], bool]:
    """(shares, whether the first is the default one) for a create: the --share folders, plus the default home
    share (None: the driver cannot share) unless --no-share. The default is dropped, not refused, when a
    --share overlaps it."""
    if no_share and given:
        raise UsageError("--share and --no-share cannot be used together", "Use one of them.")
    explicit = [parse(s) for s in given]
    if no_share:
        return [], False
    shares = validate(explicit)
    if default is not None and Path(default.host).is_dir():
        dflt = validate([default])[0]
        flavour = PureWindowsPath if sys.platform == "win32" else PurePosixPath
        if not any(_overlaps(dflt.host, s.host, flavour) or _overlaps(dflt.guest, s.guest, PurePosixPath)
                   for s in shares):
            return [dflt, *shares], True
    return shares, False


def from_config(items: list[dict[str, Any]] | None) -> list[Share]:
    return [Share.from_dict(d) for d in items or []]


def tag(index: int) -> str:
    """The device tag (virtiofs/9p mount tag, VirtualBox shared folder name) of share number `index`."""
    return f"{TAG_PREFIX}{index}"


def guest_entries(shares: list[Share]) -> list[dict[str, Any]]:
    """What the guest mounts at boot (user-data key `machine_shares`): tag, path, read-only."""
    return [{"tag": tag(i), "path": s.guest, "ro": s.ro} for i, s in enumerate(shares)]
