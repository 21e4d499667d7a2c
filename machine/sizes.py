"""A VM's size options (CPUs, memory, disk), declared alike by every driver that makes VMs: one name and one
unit per concept (`--DRIVER-cpus`, `--DRIVER-memory` in MiB, `--DRIVER-disk-size` in MiB, docker-machine's
unit), docker-machine's spellings accepted as aliases, and the bounds each checks, so a typo (-1, 0, 10**30)
is refused before a hypervisor sees it. Sizes take a unit suffix too (`20g`, `20480m`, `1t`).

Configs saved in older units are converted on load: `machine.sizeunits`."""

from __future__ import annotations

from machine.driver import Option
from machine.sizeunits import MiB

MAX_CPUS = 255  # qemu's pc/q35 limit without x2APIC; VirtualBox and Hyper-V allow fewer
MIN_MEMORY_MIB = 128  # below this no guest with a Docker engine boots
MAX_MEMORY_MIB = 4 * 1024 * 1024  # 4 TiB
MIN_DISK_MIB = 1024  # below this the engine's images do not fit (and it is almost surely a GiB meant)
MAX_DISK_MIB = 64 * 1024 * 1024  # 64 TiB (sparse disks: only what the guest writes takes space)
DEFAULT_DISK_MIB = 20 * 1024


def cpus(*, help: str = "Number of virtual CPUs", settable: bool = False, aliases: tuple[str, ...] = (),
         env_aliases: tuple[str, ...] = ()) -> Option:
    return Option("cpus", help, default=2, type=int, settable=settable, minimum=1, maximum=MAX_CPUS,
                  aliases=aliases, env_aliases=env_aliases)


def memory(default: int, help: str = "Memory in MiB (or 2g)", *, settable: bool = False,
           env_aliases: tuple[str, ...] = ()) -> Option:
    return Option("memory", help, default=default, type=MiB, settable=settable, minimum=MIN_MEMORY_MIB,
                  maximum=MAX_MEMORY_MIB, env_aliases=env_aliases)


def disk(help: str, default: int = DEFAULT_DISK_MIB) -> Option:
    """`disk-size`, in MiB everywhere (docker-machine's unit)."""
    return Option("disk-size", f"{help} in MiB (or 20g)", default=default, type=MiB, minimum=MIN_DISK_MIB,
                  maximum=MAX_DISK_MIB)
