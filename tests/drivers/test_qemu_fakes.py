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


class FakeQMP:
    """Accepts one client at a time, like a qemu `-qmp unix:...,server=on,wait=off` chardev.
    Requires qmp_capabilities first, answers query-status/system_powerdown/quit/cont, emits events."""

    def __init__(self, path: Path, status: str = "running", hang: bool = False,
                 on_quit: Callable[[], None] | None = None) -> None:
        self.path, self.status, self.hang, self.on_quit = path, status, hang, on_quit
        self.commands: list[str] = []
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

    def _session(self, conn: socket.socket) -> None:
        if self.hang:
            conn.recv(1024)  # never greet: the client must time out
            return
        self._send(conn, GREETING)
        negotiated = False
        reader = conn.makefile("rb")
        for line in reader:
            msg = json.loads(line)
            cmd = msg.get("execute")
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
            elif cmd == "quit":
                self._send(conn, {"return": {}})
                self._event(conn, "SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
                if self.on_quit:
                    self.on_quit()
                return
            else:
                self._send(conn, {"error": {"class": "CommandNotFound",
                                            "desc": f"The command {cmd} has not been found"}})
