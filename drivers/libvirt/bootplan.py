"""What a libvirt machine boots: the image resolved to a kernel/initrd or a disk, the disks made for
it (a sparse qcow2 data disk for our machine OS, a qcow2 overlay on a cached stock cloud image) and
the seed ISO.

Disks live in the machine directory unless --libvirt-storage-dir says otherwise. qemu must be able
to read (and for the data disk, write) them: with qemu:///system qemu usually runs as another user
(libvirt-qemu) that cannot enter a private home directory; see drivers/libvirt/README.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine import machinedir, process

from .domainxml import Disk

DEFAULT_CMDLINE = "console=ttyS0,115200n8 quiet"
CDROM_TARGET = "hdc"  # an IDE CD-ROM (only to boot an ISO image from BIOS)


@dataclass
class BootPlan:
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    boot_dev: str = "hd"
    disks: list[Disk] = field(default_factory=list)
    made: list[str] = field(default_factory=list)  # files we created (deleted on remove)
    ssh_user: str = "root"
    image: str = ""
    guest_share_fs: list[str] | None = None  # what the image's kernel mounts (machine OS manifest), None: unknown


def _qemu_img(*args: str | Path, what: str) -> process.Result:
    if not process.which("qemu-img"):
        from machine.errors import HostNotUsable

        raise HostNotUsable("qemu-img not found (it makes the machine's disks)", "Install it: apt install qemu-utils")
    return process.run(["qemu-img", *args], check=True, what=what, timeout=120)


def virtual_size(path: Path) -> int:
    info = json.loads(_qemu_img("info", "--output=json", path, what="qemu-img info").stdout)
    return int(info["virtual-size"])


def make_data_disk(path: Path, size_mb: int) -> None:
    """A sparse qcow2 (only written clusters take space)."""
    _qemu_img("create", "-q", "-f", "qcow2", "-o", "preallocation=off", path, f"{int(size_mb)}M",
              what="qemu-img create (data disk)")


def make_overlay(path: Path, base: Path, base_format: str, size_mb: int) -> None:
    """A qcow2 overlay on the cached base image; the base is never written."""
    size = max(int(size_mb) << 20, virtual_size(base))
    _qemu_img("create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base.resolve()), path, str(size),
              what="qemu-img create (overlay)")


def kernel_cmdline(manifest: dict[str, Any], hostname: str) -> str:
    """The manifest's recommended command line plus this machine's hostname."""
    base = manifest.get("cmdline") or manifest.get("kernel_cmdline") or DEFAULT_CMDLINE
    if isinstance(base, list):
        base = " ".join(str(x) for x in base)
    return f"{str(base).strip()} machine.hostname={hostname}".strip()


def plan(image_spec: str | None, *, name: str, storage: Path, seed_path: Path | None, disk_size_mb: int,
         cache_dir: Path | None) -> BootPlan:
    """Resolve the image and make the disks. Raises MachineError (nothing left behind on failure
    except files listed in the returned plan, which the caller records and removes)."""
    from machine.images import catalogue

    image = catalogue.default_image() if not image_spec else catalogue.resolve(image_spec)
    bp = BootPlan(ssh_user=image.ssh_user, image=image.name)
    try:
        _fill(bp, image, name=name, storage=storage, disk_size_mb=disk_size_mb, cache_dir=cache_dir)
    except BaseException:
        for f in bp.made:
            Path(f).unlink(missing_ok=True)
        raise
    if seed_path is not None:  # a read-only virtio disk: both our OS and cloud-init find it by label
        bp.disks.append(Disk(str(Path(seed_path).resolve()), "", "disk", "virtio", "raw", True))
    _assign_targets(bp.disks)
    return bp


def _fill(bp: BootPlan, image: Any, *, name: str, storage: Path, disk_size_mb: int, cache_dir: Path | None) -> None:
    from machine.images import catalogue

    storage.mkdir(parents=True, exist_ok=True)
    if image.format == "kernel+initrd":
        bp.kernel, bp.initrd = str(image.kernel), str(image.initrd)
        bp.cmdline = kernel_cmdline(image.manifest, name)
        from machine.shares import mechanisms

        bp.guest_share_fs = mechanisms.image_filesystems(image.manifest)
        data = storage / machinedir.DATA_DISK
        make_data_disk(data, disk_size_mb)
        bp.made.append(str(data))
        bp.disks.append(Disk(str(data), "vda"))
        if image.iso is not None:  # the root squashfs; the initrd finds it by label (manifest: rootfs)
            bp.disks.append(Disk(str(image.iso), "", "disk", "virtio", "raw", True))
        return
    if image.format == "iso":
        iso = (image.iso or image.path) if image.local else catalogue.fetch(image, cache_dir or storage)
        bp.boot_dev = "cdrom"
        data = storage / machinedir.DATA_DISK
        make_data_disk(data, disk_size_mb)
        bp.made.append(str(data))
        bp.disks.append(Disk(str(data), "vda"))
        bp.disks.append(Disk(str(iso), CDROM_TARGET, "cdrom", "ide", "raw", True))
        return
    # a disk image (qcow2 or raw): an overlay on the cached or local base
    base = catalogue.fetch(image, cache_dir or storage)
    overlay = storage / machinedir.ROOT_DISK
    make_overlay(overlay, Path(base), "qcow2" if image.format == "qcow2" else "raw", disk_size_mb)
    bp.made.append(str(overlay))
    bp.disks.append(Disk(str(overlay), "vda"))


def _assign_targets(disks: list[Disk]) -> None:
    """vda, vdb, ... for virtio disks in order (the first is the boot/data disk)."""
    n = 0
    for i, d in enumerate(disks):
        if d.bus == "virtio":
            disks[i] = Disk(d.path, "vd" + "abcdefghijklmnop"[n], d.device, d.bus, d.format, d.readonly)
            n += 1
