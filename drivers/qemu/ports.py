"""Free TCP ports for the host side of the forwards (SSH, engine, QMP on Windows), on 127.0.0.1 unless
the machine's `--qemu-host-address` says otherwise."""

from __future__ import annotations

import ipaddress
import os
import socket
from contextlib import ExitStack

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


def pick_free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct ports that were free a moment ago (all bound at once, then released)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
        return ports


def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on host:port (so qemu can bind its forward there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if os.name != "nt":  # as qemu's slirp does: a port in TIME_WAIT is usable
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
