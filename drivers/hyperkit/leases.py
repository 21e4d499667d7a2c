"""macOS bootpd's DHCP leases (/var/db/dhcpd_leases), which vmnet's shared network uses.

Entries look like (bootpd drops leading zeros of MAC octets, and prefixes the ARP hardware type):

    {
        name=machine1
        ip_address=192.168.64.2
        hw_address=1,a:b2:c:d4:e:f6
        identifier=1,a:b2:c:d4:e:f6
        lease=0x65a1b2c3
    }
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LEASES_FILE = Path("/var/db/dhcpd_leases")


@dataclass(frozen=True)
class Lease:
    name: str
    ip: str
    mac: str  # normalised: 6 two-digit lowercase octets
    expires: int


def normalise_mac(mac: str) -> str:
    """`a:b2:c:d4:e:f6`, `0A-B2-0C-D4-0E-F6` or `0ab20cd40ef6` -> `0a:b2:0c:d4:0e:f6`."""
    mac = mac.strip().lower()
    if "," in mac:  # `1,a:b:c...` (hardware type prefix)
        mac = mac.split(",", 1)[1]
    if ":" in mac or "-" in mac:
        parts = re.split(r"[:-]", mac)
    else:
        parts = [mac[i:i + 2] for i in range(0, len(mac), 2)]
    if len(parts) != 6 or not all(re.fullmatch(r"[0-9a-f]{1,2}", p) for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    return ":".join(p.zfill(2) for p in parts)


def parse(text: str) -> list[Lease]:
    """All well-formed entries, in file order (bootpd writes the newest first)."""
    leases = []
    for block in re.findall(r"\{(.*?)\}", text, re.S):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep:
                fields[key.strip()] = value.strip()
        try:
            mac = normalise_mac(fields["hw_address"])
            expires = int(fields.get("lease", "0"), 0)
        except (KeyError, ValueError):
            continue
        if fields.get("ip_address"):
            leases.append(Lease(fields.get("name", ""), fields["ip_address"], mac, expires))
    return leases


def ip_for(mac: str, path: Path = LEASES_FILE) -> str | None:
    """The address leased to `mac`: the entry with the latest expiry wins."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    want = normalise_mac(mac)
    found = [lease for lease in parse(text) if lease.mac == want]
    return max(found, key=lambda lease: lease.expires).ip if found else None
