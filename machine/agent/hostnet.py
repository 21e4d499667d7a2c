"""Ports that `--network host` containers listen on: while such a container runs, one long-lived SSH command
prints the guest's /proc/net/{tcp,tcp6,udp,udp6} twice a second; when the set of listening sockets changes,
a second command lists the socket inodes of the processes in those containers' cgroups, and the listening
sockets among them are reported as (proto, bind ip, port, container name).
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable
from typing import Any

from machine.agent import portspec

log = logging.getLogger("machine.agent.hostnet")

INTERVAL = 0.5
POLL = ("while :; do for t in tcp tcp6 udp udp6; do echo \"@$t\"; cat /proc/net/$t 2>/dev/null; done; "
        f"echo @end; sleep {INTERVAL}; done")


def owners_command(container_ids: list[str]) -> str:
    """For each container: `@ID` then `ls -l` of the fd folders of the processes whose cgroup names it."""
    parts = []
    for cid in container_ids:
        q = shlex.quote(cid)
        parts.append(f"echo @{q}; for p in $(grep -l {q} /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3); do "
                     f"ls -l /proc/$p/fd 2>/dev/null; done")
    return "; ".join(parts)


def parse_snapshot(lines: list[str]) -> list[tuple[str, str, int, int]]:
    """(proto, ip, port, inode) from one POLL snapshot (its lines between @tcp ... @end)."""
    tables: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith("@"):
            current = line[1:].strip()
            tables[current] = []
        elif current:
            tables[current].append(line)
    out = []
    for table, rows in tables.items():
        proto = table.rstrip("6")
        if proto in portspec.PROTOCOLS:
            out += [(proto, ip, port, inode) for ip, port, inode in portspec.parse_proc_net("\n".join(["", *rows]),
                                                                                             proto)]
    return out


def parse_owners(text: str) -> dict[int, str]:
    """{socket inode: container id} from owners_command's output."""
    owners: dict[int, str] = {}
    current = ""
    chunk: list[str] = []
    for line in [*text.splitlines(), "@"]:
        if line.startswith("@"):
            for inode in portspec.socket_inodes("\n".join(chunk)):
                owners[inode] = current
            current, chunk = line[1:].strip(), []
        else:
            chunk.append(line)
    return owners


class HostNetWatcher:
    """Runs the poll while host-network containers run (`track(ids)`), and calls `report(listeners)`."""

    def __init__(self, link: Any, report: Callable[[list[tuple[str, str, int, str]]], None],
                 stop: threading.Event, skip_ports: set[int]) -> None:
        self.link, self.report, self.stop, self.skip = link, report, stop, skip_ports
        self.containers: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def track(self, containers: dict[str, str]) -> None:
        with self._lock:
            self.containers = dict(containers)
            start = bool(containers) and (self._thread is None or not self._thread.is_alive())
            if start:
                self._thread = threading.Thread(target=self._run, name="hostnet", daemon=True)
                self._thread.start()
        if not containers:
            self.report([])

    def _run(self) -> None:
        while not self.stop.is_set():
            with self._lock:
                if not self.containers:
                    return
            try:
                self._poll()
            except Exception as e:  # noqa: BLE001 - SSH went away: try again
                log.warning("guest listeners: %s", getattr(e, "message", None) or e)
                self.stop.wait(2.0)

    def _poll(self) -> None:
        chan = self.link.transport().open_session()
        chan.exec_command(POLL)
        reader = chan.makefile("r")
        seen: frozenset[tuple[str, str, int, int]] | None = None
        lines: list[str] = []
        try:
            for raw in reader:
                line = raw.rstrip("\n")
                if line != "@end":
                    lines.append(line)
                    continue
                snapshot = frozenset(s for s in parse_snapshot(lines) if s[2] not in self.skip)
                lines = []
                with self._lock:
                    ids = dict(self.containers)
                if not ids or self.stop.is_set():
                    return
                if snapshot != seen:
                    seen = snapshot
                    self.report(self._attribute(snapshot, ids))
        finally:
            chan.close()

    def _attribute(self, snapshot: frozenset[tuple[str, str, int, int]], ids: dict[str, str]
                   ) -> list[tuple[str, str, int, str]]:
        session = self.link.session()
        res = session.run(owners_command(sorted(ids)), check=False, timeout=30)
        owners = parse_owners(res.stdout)
        return sorted({(proto, ip, port, ids[owners[inode]]) for proto, ip, port, inode in snapshot
                       if owners.get(inode) in ids})
