"""The host address of the forwards: 127.0.0.1 unless the machine's `--qemu-host-address` says otherwise
(free ports on it: machine.hostports)."""

from __future__ import annotations

import ipaddress

HOST = "127.0.0.1"


class HostAddress(str):
    """A `--qemu-host-address` value: one IPv4 address of this host (not 0.0.0.0: the client and the
    server certificate need the address the engine is reached at)."""

    description = "an IPv4 address of this host, e.g. 127.0.0.2 or a LAN address"

    def __new__(cls, raw: object) -> HostAddress:
        addr = ipaddress.IPv4Address(str(raw).strip())  # ValueError when it is not an IPv4 address
        if addr.is_unspecified or addr.is_multicast:
            raise ValueError(str(raw))
        return super().__new__(cls, str(addr))
