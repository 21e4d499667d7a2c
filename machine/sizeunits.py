"""Sizes in MiB, the one unit of every driver's `memory` and `disk-size` (docker-machine's MB), and how configs
saved before the units were one are read: qemu and libvirt disks in GiB, Hyper-V's in GB (used as GiB),
VirtualBox's and HyperKit's CPUs as `cpu_count`. The store converts on load and marks what it writes
(`disk_size_unit`), so an old 20 (GiB) never becomes a 20 MiB disk. Standard library only: the store and the
read-only commands import it."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNITS = {"": 1, "m": 1, "mb": 1, "mib": 1, "g": 1024, "gb": 1024, "gib": 1024, "t": 1024 * 1024, "tb": 1024 * 1024,
          "tib": 1024 * 1024}
_SIZE = re.compile(r"\s*(\d+)\s*([a-z]*)\s*", re.IGNORECASE)


class MiB(int):
    """A size in MiB: a whole number (MiB, as docker-machine's MB) or one with a unit (20g, 20480m, 1t)."""

    description = "a size in MiB, or with a unit: 20g, 20480m"

    def __new__(cls, raw: Any) -> MiB:
        if isinstance(raw, bool):
            raise ValueError(raw)
        if isinstance(raw, int):
            return super().__new__(cls, raw)
        match = _SIZE.fullmatch(str(raw))
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(raw)
        return super().__new__(cls, int(match.group(1)) * _UNITS[match.group(2).lower()])

    @staticmethod
    def below_minimum_hint(value: int, minimum: int, maximum: int | None) -> str | None:
        """`--qemu-disk-size 20` was meant as 20 GiB (the old unit): say so instead of a bare range."""
        if value < 1 or (maximum is not None and value * 1024 > maximum):
            return None
        return (f"{value} MiB is below the minimum of {minimum} MiB: did you mean {value} GiB? "
                f"Write {value}g or {value * 1024}.")


# Saved configs from before one unit: driver -> MiB per saved disk_size unit (qemu/libvirt: GiB; Hyper-V: GB,
# used as GiB). VirtualBox and HyperKit saved MiB already.
_OLD_DISK_UNIT_MIB = {"qemu": 1024, "libvirt": 1024, "hyperv": 1024}
UNIT_KEY = "disk_size_unit"
_RENAMED = {"cpu_count": "cpus"}  # VirtualBox and HyperKit saved their CPUs under docker-machine's name


def migrate_saved(driver: str, options: dict[str, Any]) -> dict[str, Any]:
    """Driver options as read from a config.json -> in today's names and units (MiB), without the unit marker."""
    out = dict(options)
    for old, new in _RENAMED.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    unit = out.pop(UNIT_KEY, None)
    size = out.get("disk_size")
    if unit is None and isinstance(size, int) and not isinstance(size, bool):
        out["disk_size"] = size * _OLD_DISK_UNIT_MIB.get(driver, 1)
    return out


def mark_saved(options: dict[str, Any]) -> dict[str, Any]:
    """Driver options to write: a disk size carries its unit, so a later release reads it right."""
    return {**options, UNIT_KEY: "MiB"} if "disk_size" in options else dict(options)
