"""A provisioning connection: an SSH session plus the machine's file-system root.

`ROOT` prefixes every guest path the provisioners read or write ("/" in real use). Tests point it
at a temporary directory served by a local sshd, so provisioning logic runs for real over SSH without
touching this host's /etc.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import TYPE_CHECKING

from machine import machinedir
from machine.errors import InvalidState
from machine.progress import Progress
from machine.store import MachineConfig, Store

if TYPE_CHECKING:
    from machine.driver import Driver
    from machine.provision.ssh import Result, Session

ROOT = "/"
LOGIN_KEY = machinedir.LOGIN_KEY
CONNECT_TIMEOUT = 120.0


class Remote:
    def __init__(self, session: Session, root: str | None = None) -> None:
        self.session = session
        self.root = root if root is not None else ROOT

    def path(self, guest_path: str) -> str:
        if self.root in ("", "/"):
            return guest_path
        return posixpath.join(self.root, guest_path.lstrip("/"))

    def q(self, guest_path: str) -> str:
        """The prefixed path, shell-quoted."""
        return shlex.quote(self.path(guest_path))

    def run(self, command: str, **kwargs: object) -> Result:
        return self.session.run(command, **kwargs)  # type: ignore[arg-type]

    def ok(self, command: str) -> bool:
        return self.session.run(command, check=False).ok

    def exists(self, guest_path: str) -> bool:
        return self.ok(f"test -e {self.q(guest_path)}")

    def read(self, guest_path: str) -> str | None:
        res = self.session.run(f"cat {self.q(guest_path)}", check=False)
        return res.stdout if res.ok else None

    def put(self, guest_path: str, data: bytes | str, mode: int = 0o644) -> None:
        self.session.put(data, self.path(guest_path), mode)

    def remove(self, guest_path: str) -> None:
        self.session.run(f"rm -f {self.q(guest_path)}")

    def which(self, program: str) -> str | None:
        """The program's guest path: a standard location under the root, else (real root) `command -v`."""
        prog = shlex.quote(program)
        dirs = " ".join(("/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"))
        fallback = f"command -v {prog}" if self.root in ("", "/") else "exit 1"
        res = self.session.run(f"for d in {dirs}; do [ -x {shlex.quote(self.root.rstrip('/'))}$d/{prog} ] && "
                               f"echo $d/{prog} && exit 0; done; {fallback}", check=False)
        return (res.stdout.strip().splitlines() or [None])[0] if res.ok else None


def key_file(store: Store, cfg: MachineConfig, driver: Driver | None = None) -> str:
    name = cfg.ssh.get("key") or (driver.data.get("ssh_key") if driver else None) or LOGIN_KEY
    return str(store.machine_dir(cfg.name) / name)


def open_session(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress | None = None,
                 timeout: float = CONNECT_TIMEOUT) -> Session:
    """Log in to the machine with its key, checking its pinned host key. A machine with no pin yet (an
    existing host) gets the key it shows now pinned, and the user is told its fingerprint."""
    from pathlib import Path

    from machine.provision import ssh

    ep = driver.ssh_endpoint()
    if ep is None:
        raise InvalidState(f"Machine {cfg.name!r} has no SSH endpoint (is it running?)",
                           f"Start it: machine start {cfg.name}")
    target = ssh.Target(host=ep.host, port=ep.port, user=cfg.ssh.get("user") or ep.user,
                        key_file=Path(key_file(store, cfg, driver)), host_key=cfg.ssh.get("host_key") or None,
                        name=cfg.name)
    # a booting image may get its authorized key after sshd starts (cloud-init); an existing host will not
    auth_timeout = None if driver.features.seed else min(timeout, 3.0)
    session = ssh.connect(target, timeout=timeout, auth_timeout=auth_timeout)
    if not cfg.ssh.get("host_key") and session.seen_host_key:
        cfg.ssh["host_key"] = session.seen_host_key
        if progress:
            progress.info(f"Pinned the SSH host key of {cfg.name!r}: {ssh.fingerprint(session.seen_host_key)}")
    return session
