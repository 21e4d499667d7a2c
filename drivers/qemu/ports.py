"""The host address of the forwards: 127.0.0.1 unless the machine's `--qemu-host-address` says otherwise
(free ports on it: machine.hostports)."""

from __future__ import annotations

import ipaddress
import socket

HOST = "127.0.0.1"


class HostAddress(str):
    """A `--qemu-host-address` value: one IPv4 address of this host (not 0.0.0.0: the client and the
    server certificate need the address the engine is reached at)."""

    description = ("an IPv4 address of this host: a loopback address (127.0.0.0/8, e.g. 127.0.0.2) or one of "
                   "this host's own addresses (a LAN address)")

    def __new__(cls, raw: object) -> HostAddress:
        addr = ipaddress.IPv4Address(str(raw).strip())  # ValueError when it is not an IPv4 address
        if addr.is_unspecified or addr.is_multicast or not (addr.is_loopback or is_local(str(addr))):
            raise ValueError(str(raw))
        return super().__new__(cls, str(addr))


def is_local(address: str) -> bool:
    """True when this host has `address` (a socket can be bound to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True
