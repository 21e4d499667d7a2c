"""A VM's size options (CPUs, memory, disk), declared alike by every driver that makes VMs, with the bounds
each checks, so a typo (-1, 0, 10**30) is refused before a hypervisor sees it."""

from __future__ import annotations

from machine.driver import Option

MAX_CPUS = 255  # qemu's pc/q35 limit without x2APIC; VirtualBox and Hyper-V allow fewer
MIN_MEMORY_MIB = 128  # below this no guest with a Docker engine boots
MAX_MEMORY_MIB = 4 * 1024 * 1024  # 4 TiB
MAX_DISK_GIB = 64 * 1024  # 64 TiB (sparse disks: only what the guest writes takes space)


def cpus(name: str = "cpus", help: str = "Number of virtual CPUs", *, settable: bool = False) -> Option:
    return Option(name, help, default=2, type=int, settable=settable, minimum=1, maximum=MAX_CPUS)


def memory(default: int, help: str = "Memory in MiB", *, settable: bool = False) -> Option:
    return Option("memory", help, default=default, type=int, settable=settable, minimum=MIN_MEMORY_MIB,
                  maximum=MAX_MEMORY_MIB)


def disk(help: str, default: int, *, mib: bool = False) -> Option:
    """`disk-size`, in GiB (or MiB when `mib`)."""
    return Option("disk-size", help, default=default, type=int, minimum=1,
                  maximum=MAX_DISK_GIB * 1024 if mib else MAX_DISK_GIB)
