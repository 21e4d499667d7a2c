"""Free TCP ports on 127.0.0.1 for the host side of the forwards (SSH, engine, QMP on Windows)."""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack

HOST = "127.0.0.1"


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
