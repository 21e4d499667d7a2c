"""What commands ask of a machine's driver without changing it: its state, its address, how to log in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from machine import machinedir
from machine.driver import Driver, State
from machine.errors import InvalidState, Unsupported
from machine.orchestrator.dockermachine import pin_host_key
from machine.orchestrator.loading import driver_for, require_running
from machine.progress import Progress
from machine.store import MachineConfig, Store

if TYPE_CHECKING:
    from machine.provision.ssh import Session


def status(store: Store, name: str, debug: bool = False) -> State:
    return driver_for(store, store.load(name), debug).status()


def unexpected_exit(store: Store, name: str, debug: bool = False) -> str:
    """What is known when the machine's VM crashed or was killed (empty when it runs or was stopped)."""
    return driver_for(store, store.load(name), debug).unexpected_exit()


def ip(store: Store, name: str, debug: bool = False) -> str:
    """The machine's IP address, asked of its driver (`machine ip`)."""
    addr = driver_for(store, store.load(name), debug).ip()
    if not addr:
        raise InvalidState(f"Machine {name!r} has no IP address (is it running?)", f"Start it: machine start {name}")
    return addr


@dataclass(frozen=True)
class SSHAccess:
    """How to log in to a running machine: its endpoint, login user and key, and its pinned host key."""

    name: str
    host: str
    port: int
    user: str
    key_file: Path
    host_key: str
    known_hosts: Path  # where our known_hosts file for it goes (never into docker-machine's folder)


def _running_with_ssh(store: Store, name: str, progress: Progress, debug: bool,
                      ) -> tuple[MachineConfig, Driver, SSHAccess]:
    from machine.provision.remote import key_file

    cfg = store.load(name)
    driver = driver_for(store, cfg, debug)
    if not driver.features.managed_engine:
        raise Unsupported(f"Machine {name!r} (driver {cfg.driver}) has no SSH access",
                          f"Reach its engine instead: eval $(machine env {name})")
    require_running(driver, name)
    ep = driver.ssh_endpoint()
    if ep is None:
        raise InvalidState(f"Machine {name!r} has no SSH endpoint", f"Check it: machine status {name}")
    if not cfg.ssh.get("host_key"):
        if not (cfg.origin or cfg.imported_from):
            raise InvalidState(f"Machine {name!r} has no pinned SSH host key yet",
                               f"Provision it first (this pins the key): machine provision {name}")
        # docker-machine pins nothing: learn the key on first contact, as ssh's accept-new does
        cfg = pin_host_key(store, name, progress, debug)
    # a docker-machine record's folder is not written: its known_hosts goes beside its lock file
    known = store.machines_dir / f".{name}.{machinedir.KNOWN_HOSTS}" if cfg.origin else \
        store.machine_dir(name) / machinedir.KNOWN_HOSTS
    access = SSHAccess(name=name, host=ep.host, port=ep.port, user=cfg.ssh.get("user") or ep.user,
                       key_file=Path(key_file(store, cfg, driver)), host_key=cfg.ssh["host_key"], known_hosts=known)
    return cfg, driver, access


def ssh_access(store: Store, name: str, progress: Progress, debug: bool = False) -> SSHAccess:
    """For `machine ssh` with the system client: the machine must run and have its host key pinned."""
    return _running_with_ssh(store, name, progress, debug)[2]


@contextmanager
def ssh_session(store: Store, name: str, progress: Progress, debug: bool = False,
                timeout: float = 60.0) -> Iterator[Session]:
    """A logged-in SSH session (paramiko) to a running machine, its pinned host key checked."""
    from machine.provision.remote import open_session

    cfg, driver, _ = _running_with_ssh(store, name, progress, debug)
    with open_session(store, cfg, driver, timeout=timeout) as session:
        yield session
