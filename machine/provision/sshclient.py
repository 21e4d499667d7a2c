"""Files and argv for the system ssh client (used by `machine ssh` and by the docker client for ssh://
engine URLs): known_hosts from the machine's pinned host key, an ssh_config snippet, the ssh command line.
Cheap to import (env uses it): no paramiko, no crypto."""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlsplit

from machine import machinedir
from machine.atomicfile import write_atomic
from machine.store import MachineConfig, Store


def write_known_hosts(path: Path, host: str, port: int, host_key: str) -> None:
    """A known_hosts file holding only the pinned key ("TYPE BASE64") of host:port."""
    name = host if port == 22 else f"[{host}]:{port}"
    write_atomic(path, f"{name} {' '.join(host_key.split()[:2])}\n", mode=0o644)


def ssh_options(key: Path, known_hosts: Path, port: int) -> list[str]:
    """The system ssh's options that log in with our key and check the pinned host key (known_hosts)."""
    return ["-i", str(key), "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30", "-p", str(port)]


def ssh_argv(ssh: str, key: Path, known_hosts: Path, user: str, host: str, port: int,
             command: tuple[str, ...] | list[str] = (), options: list[str] | None = None) -> list[str]:
    """The system ssh's words: our key, pinned known_hosts, port first (ssh keeps the first value of an
    option, so a user's -o cannot unpin the host key), then the user's `options`, the host, `--` and `command`."""
    argv = [ssh, *ssh_options(key, known_hosts, port), *(options or []), f"{user}@{host}"]
    if command:
        argv += ["--", *command]
    return argv


def ssh_transport_hint(store: Store, cfg: MachineConfig) -> str:
    """What the docker client (which runs the system ssh for ssh:// URLs) needs: the machine's key and
    pinned host key, given by an ssh_config snippet in the machine dir (written here)."""
    conf = store.machine_dir(cfg.name) / machinedir.SSH_CONFIG
    with contextlib.suppress(OSError):
        write_ssh_config(store, cfg)
    return (f"The engine is reached over SSH ({cfg.engine.get('url')}): the docker client runs the system ssh, which "
            f"needs the machine's key and host key. Put this line at the top of ~/.ssh/config: Include {conf}")


def write_ssh_config(store: Store, cfg: MachineConfig) -> Path:
    """<machine_dir>/ssh_config (+ known_hosts from the pin) for the system ssh client. It matches only
    this machine's host AND port, so the snippets of several machines on 127.0.0.1 can all be included."""
    mdir = store.machine_dir(cfg.name)
    url = urlsplit(cfg.engine.get("url", ""))
    host, port = url.hostname or "127.0.0.1", url.port or 22
    known = mdir / machinedir.KNOWN_HOSTS
    if cfg.ssh.get("host_key"):
        write_known_hosts(known, host, port, cfg.ssh["host_key"])
    key = mdir / (cfg.ssh.get("key") or machinedir.LOGIN_KEY)
    path = mdir / machinedir.SSH_CONFIG
    write_atomic(path, (
        f"# machine {cfg.name}: Include this file at the top of ~/.ssh/config\n"
        f'Match host {host} exec "test %p = {port}"\n  User {cfg.ssh.get("user", "root")}\n'
        f'  IdentityFile "{key}"\n  IdentitiesOnly yes\n  UserKnownHostsFile "{known}"\n'
        "  StrictHostKeyChecking yes\n"), mode=0o644)
    return path
