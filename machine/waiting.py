"""Bounded waits: for a condition, a line on a serial console log, an SSH banner."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from machine.errors import TimeoutError_


def until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2,
          hint: str = "", failed: Callable[[], str | None] | None = None) -> None:
    """Call `check` until it returns True. `failed` may return a reason to give up early."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if failed:
            reason = failed()
            if reason:
                raise TimeoutError_(f"{what}: {reason}", hint)
        if time.monotonic() >= deadline:
            raise TimeoutError_(f"Timed out after {timeout:.0f} s waiting for {what}", hint)
        time.sleep(interval)


def log_tail(path: Path | None, lines: int = 25) -> str:
    if not path or not path.exists():
        return ""
    text = path.read_bytes()[-16384:].decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def serial_has(path: Path, marker: str) -> bool:
    try:
        return marker.encode() in path.read_bytes()
    except FileNotFoundError:
        return False


def ssh_banner(host: str, port: int, timeout: float = 2.0, banner_wait: float | None = None) -> bool:
    """True when something at host:port speaks SSH (a forwarded port accepts TCP before sshd runs). Once connected,
    the banner gets `banner_wait` seconds (default `timeout`): see orchestrator.wait_ready for why more can help."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(banner_wait or timeout)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def tcp_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
