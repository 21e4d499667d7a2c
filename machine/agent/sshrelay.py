"""The SSH side of the agent: one SSH connection to the machine (reopened when it drops), TCP relays that listen
on the host and carry each connection over a `direct-tcpip` channel to an address in the guest (as `ssh -L`
does), and the host-port checks both forward paths use before they claim a port.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("machine.agent.ssh")

CHUNK = 256 * 1024
WINDOW = 8 * 1024 * 1024  # the channel's receive window: large, so a bulk transfer is not held back by acks
MAX_PACKET = 32 * 1024


def host_port_free(proto: str, host_ip: str, port: int) -> bool:
    """True when this host could listen on host_ip:port (TCP as qemu's slirp binds: a port in TIME_WAIT is
    usable)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if os.name != "nt" and proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host_ip, int(port)))
        except OSError:
            return False
    return True


class SSHLink:
    """The agent's SSH connection to its machine. `transport()` reconnects when the connection is gone."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener  # returns a machine.provision.ssh.Session
        self._session: Any = None
        self._lock = threading.Lock()

    def transport(self) -> Any:
        with self._lock:
            t = self._session.client.get_transport() if self._session is not None else None
            if t is None or not t.is_active():
                if self._session is not None:
                    self._session.close()
                self._session = self._opener()
                t = self._session.client.get_transport()
                t.set_keepalive(15)
            return t

    def session(self) -> Any:
        self.transport()
        return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


class TCPRelay:
    """Listen on host_ip:port and relay each accepted connection to guest_ip:guest_port over the SSH link.
    Constructing it binds the port (OSError when it is taken); close() stops listening and drops the open
    connections."""

    def __init__(self, link: SSHLink, host_ip: str, port: int, guest_ip: str, guest_port: int) -> None:
        self.link, self.guest = link, (guest_ip, int(guest_port))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if os.name != "nt":
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((host_ip, int(port)))
            self.listener.listen(128)
        except OSError:
            self.listener.close()
            raise
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"relay-{port}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, peer = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            chan = self.link.transport().open_channel("direct-tcpip", self.guest, peer, window_size=WINDOW,
                                                      max_packet_size=MAX_PACKET, timeout=10)
        except Exception as e:  # noqa: BLE001 - the guest refused or SSH is down: drop this connection
            log.warning("relay to guest %s:%d: %s", *self.guest, e)
            conn.close()
            return
        with self._lock:
            self._open.update((conn, chan))
        back = threading.Thread(target=self._pump, args=(chan.recv, conn.sendall, conn, chan), daemon=True)
        back.start()
        self._pump(conn.recv, chan.sendall, chan, conn)
        back.join()
        with self._lock:
            self._open.difference_update((conn, chan))
        for end in (conn, chan):
            end.close()

    @staticmethod
    def _pump(recv: Callable[[int], bytes], send: Callable[[bytes], Any], to: Any, other: Any) -> None:
        """Copy one direction until EOF, then half-close the other side."""
        try:
            while True:
                data = recv(CHUNK)
                if not data:
                    break
                send(data)
        except (OSError, EOFError, Exception):  # noqa: BLE001 - either side went away
            pass
        try:
            if isinstance(to, socket.socket):
                to.shutdown(socket.SHUT_WR)
            else:
                to.shutdown_write()
        except (OSError, EOFError, Exception):  # noqa: BLE001
            pass

    def close(self) -> None:
        self._closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the relay's thread
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            ends = list(self._open)
        for end in ends:
            try:
                end.close()
            except (OSError, Exception):  # noqa: BLE001
                pass
