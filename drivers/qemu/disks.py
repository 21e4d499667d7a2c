"""Disk images for a machine: a blank sparse qcow2 data disk, a qcow2 overlay on a cached base
image (no full copy), and UEFI firmware lookup for aarch64 disk boot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from machine.drivers.qemu.kvmprobe import MAC_QEMU_DIRS, WINDOWS_QEMU_DIRS

from machine import process
from machine.errors import HostNotUsable

MIB = 1 << 20


def qemu_img() -> str:
    extra = WINDOWS_QEMU_DIRS if sys.platform == "win32" else MAC_QEMU_DIRS if sys.platform == "darwin" else ()
    found = process.which("qemu-img", extra)
    if not found:
        raise HostNotUsable("qemu-img is not installed", "Install it: apt install qemu-utils / brew install qemu.")
    return found


def create_blank(path: Path, size_mib: int) -> None:
    """A sparse qcow2 of `size_mib` MiB (a few hundred KiB on disk until the guest writes)."""
    process.run([qemu_img(), "create", "-q", "-f", "qcow2", str(path), f"{int(size_mib)}M"], check=True,
                what="qemu-img create")


def virtual_size(path: Path) -> int:
    result = process.run([qemu_img(), "info", "--output=json", str(path)], check=True, what="qemu-img info")
    return int(json.loads(result.stdout).get("virtual-size", 0))


def create_overlay(path: Path, base: Path, base_format: str, size_mib: int) -> None:
    """A qcow2 overlay backed by `base`, grown to `size_mib` MiB (never smaller than the base)."""
    size = max(int(size_mib) * MIB, virtual_size(base))
    process.run([qemu_img(), "create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base), str(path),
                 str(size)], check=True, what="qemu-img create (overlay)")


FIRMWARE_CANDIDATES = (
    "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
    "/usr/share/AAVMF/AAVMF_CODE.fd",
    "/usr/share/qemu/edk2-aarch64-code.fd",
    "/opt/homebrew/share/qemu/edk2-aarch64-code.fd",
    "/usr/local/share/qemu/edk2-aarch64-code.fd",
    r"C:\Program Files\qemu\share\edk2-aarch64-code.fd",
)


def aarch64_firmware() -> Path | None:
    return next((Path(p) for p in FIRMWARE_CANDIDATES if Path(p).is_file()), None)
