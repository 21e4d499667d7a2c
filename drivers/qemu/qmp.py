"""A small QMP (QEMU Machine Protocol) client over a unix socket or, on Windows, TCP on 127.0.0.1.

The protocol: the server greets with {"QMP": {...}}; the client must send qmp_capabilities;
then each {"execute": ...} gets one {"return": ...} or {"error": ...} line, with asynchronous
{"event": ...} lines possibly in between. Every call has a short timeout: a hung qemu must not
hang `machine ls`.
"""

from __future__ import annotations

import hashlib
import json
import socket
import tempfile
from pathlib import Path
from typing import Any

from machine import machinedir

DEFAULT_TIMEOUT = 2.0
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def short_socket(machine_dir: Path, file_name: str, fallback: str) -> Path:
    """A unix socket in the machine dir when the path fits sun_path (and has no comma, which qemu's option
    syntax would split), else under the temp dir as `fallback` with {digest} (of the machine dir) filled in."""
    path = Path(machine_dir) / file_name
    if len(str(path).encode()) <= MAX_SOCKET_PATH and "," not in str(path):
        return path
    digest = hashlib.sha256(str(Path(machine_dir).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / fallback.format(digest=digest)


def socket_path(machine_dir: Path) -> Path:
    """The QMP unix socket."""
    return short_socket(machine_dir, machinedir.QMP_SOCKET, "machine-qmp-{digest}.sock")


class QMPError(Exception):
    """QMP could not be reached or answered with an error."""


def unix_address(path: object) -> str:
    return f"unix:{path}"


def tcp_address(port: int, host: str = "127.0.0.1") -> str:
    return f"tcp:{host}:{port}"


def _connect(address: str, timeout: float) -> socket.socket:
    kind, _, rest = address.partition(":")
    if kind == "unix":
        if not hasattr(socket, "AF_UNIX"):
            raise QMPError("unix sockets are not available on this platform")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = rest
    elif kind == "tcp":
        host, _, port = rest.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    else:
        raise QMPError(f"unknown QMP address {address!r}")
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError as e:
        sock.close()
        raise QMPError(f"cannot connect to QMP at {address}: {e}") from e
    return sock


class QMPClient:
    """One QMP session: `with QMPClient(addr) as q: q.execute("query-status")`."""

    def __init__(self, address: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self.greeting: dict[str, Any] = {}
        self._sock: socket.socket | None = None
        self._file: Any = None

    def __enter__(self) -> QMPClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        self._sock = _connect(self.address, self.timeout)
        self._file = self._sock.makefile("rb")
        greeting = self._read()
        if "QMP" not in greeting:
            self.close()
            raise QMPError(f"not a QMP server at {self.address}: {greeting}")
        self.greeting = greeting
        self.execute("qmp_capabilities")

    def close(self) -> None:
        for thing in (self._file, self._sock):
            if thing is not None:
                try:
                    thing.close()
                except OSError:
                    pass
        self._file = self._sock = None

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except OSError as e:
            raise QMPError(f"QMP at {self.address} did not answer: {e}") from e
        if not line:
            raise EOFError(f"QMP at {self.address} closed the connection")
        try:
            msg = json.loads(line)
        except ValueError as e:
            raise QMPError(f"QMP sent something that is not JSON: {line[:200]!r}") from e
        if not isinstance(msg, dict):
            raise QMPError(f"QMP sent an unexpected message: {msg!r}")
        return msg

    def execute(self, command: str, arguments: dict[str, Any] | None = None, *, fd: int | None = None) -> Any:
        """Run a command; its "return" value. Events read meanwhile are kept in `self.events`. `fd`: a file
        descriptor passed along with the command (SCM_RIGHTS, unix sockets only), as `getfd` wants."""
        if self._sock is None:
            raise QMPError("not connected")
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        data = json.dumps(msg).encode() + b"\r\n"
        try:
            if fd is None:
                self._sock.sendall(data)
            elif not hasattr(socket, "send_fds") or self._sock.family != getattr(socket, "AF_UNIX", None):
                raise QMPError(f"cannot pass a file to qemu over {self.address} (only over a unix socket)")
            else:
                socket.send_fds(self._sock, [data], [fd])
        except OSError as e:
            raise QMPError(f"cannot send to QMP at {self.address}: {e}") from e
        while True:
            try:
                reply = self._read()
            except EOFError as e:
                raise QMPError(str(e)) from e
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                err = reply["error"]
                raise QMPError(f"QMP {command} failed: {err.get('class', '')}: {err.get('desc', err)}")
            if "return" in reply:
                return reply["return"]


def query_status(address: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The VM run state qemu reports: running, paused, shutdown, ..."""
    with QMPClient(address, timeout) as q:
        result = q.execute("query-status")
    return str(result.get("status", "")) if isinstance(result, dict) else ""


def command(address: str, name: str, timeout: float = DEFAULT_TIMEOUT, tolerate_eof: bool = False) -> None:
    """Send one command (system_powerdown, quit, cont). `tolerate_eof`: the server may close the
    connection instead of answering (quit)."""
    with QMPClient(address, timeout) as q:
        try:
            q.execute(name)
        except QMPError:
            if not tolerate_eof:
                raise


def hmp(address: str, command_line: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Run a human-monitor command (e.g. hostfwd_add) through QMP; its text output ("" when it says nothing)."""
    with QMPClient(address, timeout) as q:
        result = q.execute("human-monitor-command", {"command-line": command_line})
    return str(result or "")


def can_pass_files(address: str) -> bool:
    """Whether a file descriptor can go to qemu over this QMP address (a unix socket on a POSIX host)."""
    return address.startswith("unix:") and hasattr(socket, "send_fds")
