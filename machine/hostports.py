"""Free TCP ports on this host, for the host side of a machine's forwards (SSH, engine, QMP on Windows).
Ports are picked on 127.0.0.1 unless a driver's option names another address of this host."""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack

from machine.errors import DriverError

LOOPBACK = "127.0.0.1"


def pick_free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports that were free a moment ago (all bound at once, then released)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                s.bind((host, 0))
            except OSError as e:  # the address left this host (a LAN address that changed), or no ports left
                raise DriverError(f"Cannot listen on {host} for the machine's forwards: {e.strerror or e}",
                                  "Use a loopback address (127.0.0.0/8) or one this host has (machine set NAME "
                                  "--qemu-host-address 127.0.0.1).") from None
            ports.append(int(s.getsockname()[1]))
        return ports


def free_port(host: str = LOOPBACK) -> int:
    """One port nothing listens on at host right now."""
    return pick_free_ports(1, host)[0]


def port_free(port: int, host: str = LOOPBACK) -> bool:
    """True when a hypervisor could listen on host:port. Bound as qemu's user-mode forwards bind
    (SO_REUSEADDR): connections left in TIME_WAIT by the last run do not make the port busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let two listeners share the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True
