"""Which OS a machine runs, from /etc/os-release (pure functions)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from machine.errors import Unsupported

MACHINE_OS_IDS = ("machine-os", "machineos")
FAMILIES = ("machine-os", "debian", "ubuntu", "fedora", "rhel", "alpine")


@dataclass(frozen=True)
class OSInfo:
    id: str
    id_like: tuple[str, ...]
    version_id: str
    pretty_name: str

    @property
    def family(self) -> str:
        """machine-os | debian | ubuntu | fedora | rhel | alpine; '' when unsupported."""
        ids = (self.id, *self.id_like)
        if self.id in MACHINE_OS_IDS:
            return "machine-os"
        if self.id in ("ubuntu",):
            return "ubuntu"
        if self.id in ("fedora",):
            return "fedora"
        if self.id in ("alpine",):
            return "alpine"
        if self.id == "debian" or "debian" in ids or "ubuntu" in ids:
            return "ubuntu" if "ubuntu" in ids else "debian"
        if any(i in ("rhel", "centos", "rocky", "almalinux", "ol", "amzn") for i in ids):
            return "rhel"
        if "fedora" in ids:
            return "fedora"
        return ""


def parse_os_release(text: str) -> OSInfo:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = parts[0] if parts else ""
    return OSInfo(
        id=values.get("ID", "").lower(),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", "") or values.get("NAME", "") or values.get("ID", "unknown"),
    )


def require_supported(info: OSInfo, machine: str) -> str:
    family = info.family
    if not family:
        raise Unsupported(
            f"Machine {machine!r} runs {info.pretty_name or 'an unknown OS'} (ID={info.id or '?'}), which machine "
            "cannot provision",
            "Supported: the machine OS, Debian, Ubuntu, Fedora, RHEL-family (CentOS Stream, Rocky, Alma) and Alpine. "
            "For another OS, install Docker yourself and use: machine create -d none --url tcp://HOST:2376",
        )
    return family
