"""Shared folders on guests other than our machine OS (cloud images, provisioned over SSH): /etc/fstab lines
(marked, replaced as a block at every provisioning and start, `nofail` so a missing device never blocks the boot;
systemd mounts them with the local file systems, before docker.service) and a mount of each now.
Our machine OS mounts its shares itself from the seed (isos/rootfs/etc/machine-os/lib.sh `mount_share`)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from machine.provision.remote import Remote

MARK = "# machine share"
OPTIONS = {
    "virtiofs": ("virtiofs", "defaults"),
    "9p": ("9p", "trans=virtio,version=9p2000.L,msize=262144,cache=mmap"),
    "vboxsf": ("vboxsf", "defaults"),
}


def _fstab_path(path: str) -> str:
    """fstab's escaping: spaces, tabs, newlines and backslashes as octal."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in path)


def fstab_lines(entries: list[dict[str, Any]], mechanism: str) -> list[str]:
    fstype, opts = OPTIONS[mechanism]
    return [f"{e['tag']} {_fstab_path(e['guest'])} {fstype} {opts},nofail{',ro' if e.get('ro') else ''} 0 0 {MARK}"
            for e in entries]


def merged_fstab(current: str, lines: list[str]) -> str:
    """`current` without our old lines, plus `lines`."""
    kept = [line for line in current.splitlines() if not line.rstrip().endswith(MARK)]
    return "\n".join([*kept, *lines]) + "\n"


def apply(remote: Remote, entries: list[dict[str, Any]], mechanism: str | None) -> list[str]:
    """Write the fstab block and mount each share; returns "share HOST: REASON" for those that did not mount."""
    current = remote.read("/etc/fstab") or ""
    lines = fstab_lines(entries, mechanism) if entries and mechanism in OPTIONS else []
    wanted = merged_fstab(current, lines)
    if wanted != (current if current.endswith("\n") else current + "\n"):
        remote.put("/etc/fstab", wanted, 0o644)
    errors = []
    for e in entries if lines else []:
        path = shlex.quote(e["guest"])
        res = remote.run(f"mkdir -p {path} && (mountpoint -q {path} || mount {path})", check=False)
        if not res.ok:
            errors.append(f"share {e['host']}: {(res.stderr or res.stdout).strip()[-200:] or 'mount failed'}")
    return errors
