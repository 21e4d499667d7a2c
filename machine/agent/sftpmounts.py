"""reverse-sftp shares, the agent's side: for each share, an `exec` session over the machine's SSH connection
runs `sshfs -o passive` in the guest (it speaks SFTP on its stdin/stdout) and the agent serves that session with
the share's SFTP server (machine/shares/sftpserver.py). Nothing listens on the host.

When a mount ends (SSH dropped, VM rebooted, sshfs killed) it is made again. After each (re)mount, containers
that were already running with a bind mount under the share are restarted: they started before the share was
there (`--restart always` after a boot) and saw the guest's empty folder, not the host's.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

log = logging.getLogger("machine.agent.shares")

MOUNT_WAIT = 30.0  # seconds sshfs gets to mount after its session opened
RETRY = 3.0
SSHFS_OPTIONS = ("passive", "allow_other", "dcache_timeout=1", "dcache_stat_timeout=1", "dcache_link_timeout=1",
                 "dcache_dir_timeout=1")

MOUNTING, MOUNTED, FAILED = "mounting", "mounted", "failed"


def guest_command(path: str, read_only: bool) -> str:
    """The guest's shell command: drop a dead mount of ours at `path` (the previous agent's), make the folder,
    then become sshfs in passive mode on the session's stdin/stdout. Nothing but SFTP may reach stdout: the
    preparation writes to stderr."""
    p = shlex.quote(path)
    opts = ",".join(SSHFS_OPTIONS + (("ro",) if read_only else ()))
    return ("exec 3>&1 1>&2; modprobe -q fuse 2>/dev/null; "
            f"if awk -v p={p} '$2 == p && $3 == \"fuse.sshfs\" {{ f = 1 }} END {{ exit !f }}' /proc/mounts; "
            f"then umount -l {p}; fi; "
            f"mkdir -p {p} && exec sshfs -f -o {opts} :/ {p} 1>&3 3>&-")


def mounted_check(path: str) -> str:
    p = shlex.quote(path)
    return f"awk -v p={p} '$2 == p && $3 == \"fuse.sshfs\" {{ f = 1 }} END {{ exit !f }}' /proc/mounts"


def under(source: str, guest: str) -> bool:
    s, g = PurePosixPath(source), PurePosixPath(guest)
    return s == g or g in s.parents


class SFTPMount:
    """One share kept mounted in the guest while the agent runs. `state` is MOUNTING, MOUNTED or FAILED (with
    `error`); `changed()` is called on each change."""

    def __init__(self, share: dict[str, Any], open_transport: Callable[[], Any], run: Callable[[str], int],
                 stop: threading.Event, changed: Callable[[], None],
                 containers: Callable[[str], list[Any]] | None = None,
                 restart: Callable[[list[Any]], None] | None = None) -> None:
        self.share, self._transport, self._run, self._stop, self._changed = share, open_transport, run, stop, changed
        self._containers, self._restart = containers, restart
        self.state, self.error, self.mounts = MOUNTING, "", 0
        self.channel: Any = None

    def row(self) -> dict[str, Any]:
        return {"host": self.share["host"], "guest": self.share["guest"], "ro": bool(self.share.get("ro")),
                "state": self.state, "error": self.error, "mounts": self.mounts}

    def _set(self, state: str, error: str = "") -> None:
        if (state, error) != (self.state, self.error):
            self.state, self.error = state, error
            (log.warning if state == FAILED else log.info)("share %s -> %s: %s%s", self.share["host"],
                                                           self.share["guest"], state, f" ({error})" if error else "")
            self._changed()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve_once()
            except Exception as e:  # noqa: BLE001 - SSH down, guest refused: say so, try again
                self._set(FAILED, getattr(e, "message", None) or str(e) or type(e).__name__)
            self._stop.wait(RETRY)

    def _serve_once(self) -> None:
        from machine.shares import sftpserver

        guest = self.share["guest"]
        before = self._containers(guest) if self._containers else []
        from machine.agent.sshrelay import MAX_PACKET, WINDOW

        chan = self._transport().open_session(window_size=WINDOW, max_packet_size=MAX_PACKET, timeout=30)
        self.channel = chan
        errors: list[bytes] = []
        threading.Thread(target=self._drain_stderr, args=(chan, errors), daemon=True).start()
        chan.exec_command(guest_command(guest, bool(self.share.get("ro"))))
        server = threading.Thread(target=sftpserver.serve, args=(chan, self.share["host"], bool(self.share.get("ro"))),
                                  name=f"sftp-{self.share.get('tag', guest)}", daemon=True)
        server.start()
        if self._wait_mounted(chan):
            self.mounts += 1
            self._set(MOUNTED)
            if before and self._restart:
                self._restart(before)
        server.join()
        chan.close()
        if self._stop.is_set():
            return
        status = chan.recv_exit_status() if chan.exit_status_ready() else -1
        text = b"".join(errors).decode(errors="replace").strip()[-300:]
        self._set(FAILED, f"sshfs ended (exit {status}){': ' + text if text else ''}")

    def _wait_mounted(self, chan: Any) -> bool:
        deadline = time.monotonic() + MOUNT_WAIT
        while time.monotonic() < deadline and not self._stop.is_set() and not chan.exit_status_ready():
            if self._run(mounted_check(self.share["guest"])) == 0:
                return True
            self._stop.wait(0.3)
        return False

    @staticmethod
    def _drain_stderr(chan: Any, into: list[bytes]) -> None:
        while True:
            try:
                data = chan.recv_stderr(4096)
            except Exception:  # noqa: BLE001 - closed
                return
            if not data:
                return
            into.append(data)
            del into[:-20]

    def close(self) -> None:
        chan = self.channel
        if chan is not None:
            try:
                chan.close()
            except Exception:  # noqa: BLE001
                pass


def bind_users(containers: list[dict[str, Any]], guest: str) -> list[str]:
    """Ids of the running containers (`GET /containers/json` rows) with a bind mount from `guest` or below."""
    return [c["Id"] for c in containers
            if any(m.get("Type") == "bind" and under(str(m.get("Source") or ""), guest) for m in c.get("Mounts") or [])]
