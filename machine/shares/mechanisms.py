"""How a share reaches the guest, chosen per driver and host: the fastest mechanism the driver declares
(`Driver.features.share_mechanisms`, in order of preference) that this host has. Host facts only: no driver names.

| mechanism | host side | guest side |
|---|---|---|
| virtiofs | `virtiofsd` per share (qemu: started with the VM; libvirt starts its own) | `mount -t virtiofs TAG` |
| vboxsf | `VBoxManage sharedfolder add` (permanent, on the powered-off VM) | `mount -t vboxsf TAG` |
| 9p | qemu `-fsdev local` + virtio-9p-pci, libvirt `<filesystem>`, HyperKit `virtio-9p,path=,tag=` | `mount -t 9p` |
| smb | Hyper-V: `New-SmbShare` per folder (on this Windows machine) for a local account | `mount -t cifs` |
| reverse-sftp | the agent serves SFTP (paramiko) over the machine's SSH connection, after boot | `sshfs -o passive` |

reverse-sftp needs no hypervisor support, so it works wherever the guest is reached over SSH (the fallback on
hosts without virtiofsd or 9p, e.g. Windows); it is mounted by the agent after the VM is up, not at boot.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

VIRTIOFS = "virtiofs"
NINEP = "9p"
VBOXSF = "vboxsf"
SMB = "smb"
REVERSE_SFTP = "reverse-sftp"
# Mechanisms the host's agent mounts over SSH once the VM is up (no device, nothing for the guest's boot to do).
HOST_SERVED = (REVERSE_SFTP,)
# Pins the mechanism (one of the driver's) instead of the fastest: benchmarks and tests compare them. A machine's
# own choice (`machine create/set --share-mechanism`) comes first; AUTO (the default) leaves it to this variable
# and then to the fastest usable one.
OVERRIDE_ENV = "MACHINE_SHARE_MECHANISM"
AUTO = "auto"
# The guest file system each mechanism mounts. The machine OS image's manifest lists those its kernel has
# (`share_filesystems`, from the kernel config and the modules the image keeps); `auto` skips the others.
GUEST_FS = {VIRTIOFS: "virtiofs", NINEP: "9p", VBOXSF: "vboxsf", SMB: "cifs", REVERSE_SFTP: "fuse"}
VIRTIOFSD_DIRS = ("/usr/lib/qemu", "/usr/libexec", "/usr/lib", "/usr/local/libexec")

# What does not carry across each mechanism (README "Shared folders" says the same).
LIMITS = {
    VIRTIOFS: "no inotify events for changes made on the host; host changes to a file's attributes show in the "
              "guest within 1 s (cache=auto); read-only is enforced by the guest mount",
    NINEP: "no inotify events for changes made on the host; slower on many small files; no file locks across "
           "host and guest",
    VBOXSF: "no inotify events for host changes; symlinks only where VirtualBox allows them (off by default)",
    SMB: "no inotify events for host changes; files the guest creates belong on the host to the machine's local "
         "account (not to the host user); modes and ownership are not kept (uid 0, modes 0777 in the guest); symlinks "
         "as CIFS 'mfsymlinks' files; the folder must be on the Hyper-V host, so only a local Hyper-V (this Windows "
         "machine) shares this machine's folders",
    REVERSE_SFTP: "mounted by the host agent after boot (containers that started earlier with a bind mount under "
                  "the share are restarted once it is mounted); no inotify events; host changes show within 1 s; "
                  "no file locks across host and guest; chown is ignored (files stay the host user's); symlinks "
                  "leading out of the share are not followed on the host; slower than virtiofs/9p",
}


@dataclass(frozen=True)
class Verdict:
    mechanism: str
    ok: bool
    reason: str


def find_virtiofsd() -> str | None:
    from machine import process

    return process.which("virtiofsd", VIRTIOFSD_DIRS)


def check(mechanism: str, platform: str | None = None) -> Verdict:
    """Can this host serve `mechanism`? Never raises."""
    plat = platform or sys.platform
    if mechanism == VIRTIOFS:
        if not plat.startswith("linux"):
            return Verdict(mechanism, False, "virtiofsd runs on Linux hosts only")
        path = find_virtiofsd()
        if not path:
            return Verdict(mechanism, False, "virtiofsd not found (Debian: package qemu-system-common)")
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            return Verdict(mechanism, False, f"{path} needs root (it switches to each caller's uid)")
        return Verdict(mechanism, True, f"{path}")
    if mechanism == NINEP:
        if plat == "win32":
            return Verdict(mechanism, False, "qemu on Windows has no virtio-9p")
        return Verdict(mechanism, True, "virtio-9p, built into the hypervisor")
    if mechanism == VBOXSF:
        return Verdict(mechanism, True, "VirtualBox shared folders (vboxsf in the guest)")
    if mechanism == SMB:
        if plat != "win32":
            return Verdict(mechanism, False, "SMB shares are made on the Hyper-V host: only a Hyper-V on this Windows "
                                             "machine can share this machine's folders")
        return Verdict(mechanism, True, "an SMB share on this machine per folder, CIFS in the guest")
    if mechanism == REVERSE_SFTP:
        return Verdict(mechanism, True, "sshfs in the guest, served by the machine's agent over SSH")
    return Verdict(mechanism, False, f"unknown mechanism {mechanism!r}")


def _pinned(machine_choice: str = AUTO) -> tuple[str, str]:
    """(mechanism, who pinned it): the machine's own choice, else $MACHINE_SHARE_MECHANISM; ("", "") for auto."""
    if machine_choice and machine_choice != AUTO:
        return machine_choice, "--share-mechanism"
    env = os.environ.get(OVERRIDE_ENV, "")
    return (env, OVERRIDE_ENV) if env else ("", "")


def _candidates(declared: tuple[str, ...], machine_choice: str = AUTO) -> tuple[str, ...]:
    pinned, _ = _pinned(machine_choice)
    return tuple(m for m in declared if m == pinned) if pinned else declared


def _verdict(mechanism: str, platform: str | None, guest_fs: list[str] | None) -> Verdict:
    """check() plus the image: a mechanism whose file system the machine's image lacks cannot mount there
    (guest_fs None: the image does not say, e.g. an older machine OS build or a cloud image: not checked)."""
    if guest_fs is not None and GUEST_FS.get(mechanism) not in guest_fs:
        return Verdict(mechanism, False, f"the machine's image cannot mount {GUEST_FS.get(mechanism, mechanism)} "
                                        f"(its kernel has {', '.join(guest_fs) or 'no share file system'})")
    return check(mechanism, platform)


def choose(declared: tuple[str, ...], platform: str | None = None, *, machine_choice: str = AUTO,
           guest_fs: list[str] | None = None) -> Verdict | None:
    """The first declared mechanism this host can serve and the machine's image can mount (the machine's
    --share-mechanism, else $MACHINE_SHARE_MECHANISM, pins one); None when the driver declares none or none works
    (`explain` says why)."""
    for m in _candidates(declared, machine_choice):
        v = _verdict(m, platform, guest_fs)
        if v.ok:
            return v
    return None


def explain(declared: tuple[str, ...], platform: str | None = None, *, machine_choice: str = AUTO,
            guest_fs: list[str] | None = None) -> str:
    """One line for `machine doctor` and errors: which mechanism would be used, and why the faster ones are not."""
    if not declared:
        return "no shared folders (the driver declares no mechanism)"
    pinned, who = _pinned(machine_choice)
    if pinned and pinned not in declared:
        return f"none: {who}={pinned} is not one of {', '.join(declared)}"
    skipped: list[str] = []
    for m in _candidates(declared, machine_choice):
        v = _verdict(m, platform, guest_fs)
        if v.ok:
            why = f" ({'; '.join(skipped)})" if skipped else ""
            return f"{m}: {v.reason}{why}"
        skipped.append(f"not {m}: {v.reason}")
    return "none usable here: " + "; ".join(skipped)


def pick(name: str, declared: tuple[str, ...], shares: list, machine_choice: str = AUTO,
         guest_fs: list[str] | None = None) -> str:
    """For a driver's start: the mechanism of machine `name`'s shares ("" without shares); DriverError naming why
    when none of the driver's mechanisms works here for its image."""
    if not shares:
        return ""
    chosen = choose(declared, machine_choice=machine_choice, guest_fs=guest_fs)
    if chosen is None:
        from machine.errors import DriverError

        raise DriverError(f"{name!r} has shared folders but cannot share them here: "
                          f"{explain(declared, machine_choice=machine_choice, guest_fs=guest_fs)}",
                          f"Remove them (machine set {name} --no-share), choose another mechanism "
                          f"(machine set {name} --share-mechanism auto) or see 'machine doctor'.")
    return chosen.mechanism


def image_filesystems(manifest: dict) -> list[str] | None:
    """The share file systems a machine OS image declares (manifest `share_filesystems`); None when it does not
    say (builds before the field, other images): then every mechanism is tried, as before."""
    declared = manifest.get("share_filesystems")
    if not isinstance(declared, list) or not all(isinstance(x, str) for x in declared):
        return None
    return list(declared)


def validate_choice(choice: str, declared: tuple[str, ...], driver: str, platform: str | None = None) -> str:
    """`--share-mechanism` as given: AUTO or one of the driver's mechanisms that this host can serve. Raises
    UsageError naming the choices."""
    from machine.errors import UsageError

    value = (choice or AUTO).strip().lower()
    choices = (AUTO, *declared)
    if value not in choices:
        raise UsageError(f"--share-mechanism {choice!r} is not one of driver {driver}'s: {', '.join(choices)}",
                         "'machine doctor' says which one each driver would use on this host.")
    if value != AUTO:
        v = check(value, platform)
        if not v.ok:
            raise UsageError(f"--share-mechanism {value}: this host cannot serve it: {v.reason}",
                             f"Choose another of {', '.join(choices)}, or auto.")
    return value
