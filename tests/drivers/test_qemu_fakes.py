"""Test helpers for the qemu driver tests: a fake QMP server speaking the real protocol over a unix socket."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

GREETING = {"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"},
                    "capabilities": ["oob"]}}


def short_socket_path() -> Path:
    return Path(tempfile.mkdtemp(prefix="qmp", dir="/tmp")) / "q.sock"


STREAM_MAGIC = b"QEVM\x00\x00\x00\x03"  # a migration stream starts with QEMU_VM_FILE_MAGIC and the version (3)


class FakeQMP:
    """Accepts one client at a time, like a qemu `-qmp unix:...,server=on,wait=off` chardev.
    Requires qmp_capabilities first, answers query-status/system_powerdown/quit/cont, emits events.
    Migration as qemu 7.2 does it: `getfd` takes the descriptor sent with it (SCM_RIGHTS), `migrate` with
    `fd:NAME` writes a stream (magic, then `memory`) to it and leaves the VM `postmigrate`, `migrate-incoming`
    reads one (the VM then has the source's run state, or qemu exits: `on_quit`)."""

    def __init__(self, path: Path, status: str = "running", hang: bool = False,
                 on_quit: Callable[[], None] | None = None) -> None:
        self.path, self.status, self.hang, self.on_quit = path, status, hang, on_quit
        self.commands: list[str] = []
        self.fds: dict[str, int] = {}
        self.migration: dict[str, Any] = {}
        self.memory = b"guest memory " * 1000
        self.fail_migration = ""  # error-desc of a migration that fails
        self.loaded = b""
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(str(path))
        self._srv.listen(4)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"unix:{self.path}"

    def close(self) -> None:
        self._stop = True
        try:
            self._srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._srv.close()
        self._thread.join(timeout=2)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            with conn:
                try:
                    self._session(conn)
                except OSError:
                    pass

    @staticmethod
    def _send(conn: socket.socket, msg: dict[str, Any]) -> None:
        conn.sendall(json.dumps(msg).encode() + b"\r\n")

    def _event(self, conn: socket.socket, name: str, data: dict | None = None) -> None:
        self._send(conn, {"event": name, "data": data or {}, "timestamp": {"seconds": 1, "microseconds": 2}})

    def _lines(self, conn: socket.socket, fds: list[int]):
        """The client's lines; descriptors sent along (SCM_RIGHTS) are appended to `fds`."""
        buf = b""
        while True:
            data, got, _flags, _addr = socket.recv_fds(conn, 65536, 4)
            fds.extend(got)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line

    def _session(self, conn: socket.socket) -> None:
        if self.hang:
            conn.recv(1024)  # never greet: the client must time out
            return
        self._send(conn, GREETING)
        negotiated = False
        received: list[int] = []
        for line in self._lines(conn, received):
            msg = json.loads(line)
            cmd = msg.get("execute")
            args = msg.get("arguments") or {}
            self.commands.append(cmd)
            if not negotiated and cmd != "qmp_capabilities":
                self._send(conn, {"error": {"class": "CommandNotFound",
                                            "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}})
                continue
            if cmd == "qmp_capabilities":
                negotiated = True
                self._send(conn, {"return": {}})
            elif cmd == "query-status":
                self._send(conn, {"return": {"status": self.status, "singlestep": False,
                                             "running": self.status == "running"}})
            elif cmd == "system_powerdown":
                self._event(conn, "POWERDOWN")
                self._send(conn, {"return": {}})
            elif cmd == "cont":
                self.status = "running"
                self._send(conn, {"return": {}})
                self._event(conn, "RESUME")
            elif cmd == "stop":
                self.status = "paused"
                self._send(conn, {"return": {}})
                self._event(conn, "STOP")
            elif cmd == "quit":
                self._send(conn, {"return": {}})
                self._event(conn, "SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
                if self.on_quit:
                    self.on_quit()
                return
            elif cmd == "getfd":
                if not received:
                    self._send(conn, {"error": {"class": "GenericError",
                                                "desc": "No file descriptor supplied via SCM_RIGHTS"}})
                    continue
                self.fds[args["fdname"]] = received.pop(0)
                self._send(conn, {"return": {}})
            elif cmd == "closefd":
                fd = self.fds.pop(args.get("fdname", ""), None)
                if fd is None:
                    self._send(conn, {"error": {"class": "GenericError",
                                                "desc": f"File descriptor named '{args.get('fdname')}' not found"}})
                    continue
                os.close(fd)
                self._send(conn, {"return": {}})
            elif cmd == "migrate-set-parameters":
                self._send(conn, {"return": {}})
            elif cmd in ("migrate", "migrate-incoming"):
                uri = str(args.get("uri", ""))
                fd = self.fds.pop(uri[3:], None) if uri.startswith("fd:") else None
                if fd is None:
                    self._send(conn, {"error": {"class": "GenericError",
                                                "desc": f"File descriptor named '{uri[3:]}' has not been found"}})
                    continue
                if cmd == "migrate":
                    self._send(conn, {"return": {}})
                    self._migrate_out(conn, fd)
                elif not self._migrate_in(conn, fd):  # (qemu loads in the background; here before the answer)
                    return
            elif cmd == "query-migrate":
                self._send(conn, {"return": dict(self.migration)})
            else:
                self._send(conn, {"error": {"class": "CommandNotFound",
                                            "desc": f"The command {cmd} has not been found"}})

    def _migrate_out(self, conn: socket.socket, fd: int) -> None:
        source_state = self.status
        with os.fdopen(fd, "wb") as out:
            if self.fail_migration:
                self.migration = {"status": "failed", "error-desc": self.fail_migration}
                self._event(conn, "MIGRATION", {"status": "failed"})
                return
            out.write(STREAM_MAGIC + source_state.encode().ljust(16) + self.memory)
        self.status = "postmigrate"
        self.migration = {"status": "completed", "total-time": 12, "ram": {"total": len(self.memory)}}
        self._event(conn, "MIGRATION", {"status": "completed"})

    def _migrate_in(self, conn: socket.socket, fd: int) -> bool:
        with os.fdopen(fd, "rb") as f:
            stream = f.read()
        if not stream.startswith(STREAM_MAGIC):  # qemu: "load of migration failed: Invalid argument", exit 1
            self._send(conn, {"return": {}})
            if self.on_quit:
                self.on_quit()
            return False
        self.loaded = stream[len(STREAM_MAGIC) + 16:]
        self.status = stream[len(STREAM_MAGIC):len(STREAM_MAGIC) + 16].decode().strip()
        self._send(conn, {"return": {}})
        return True
