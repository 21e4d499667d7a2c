"""Provisioning: keys, certificates and the seed before a machine is created (`prepare`), the engine
over SSH after it boots (`provision`), certificates that follow address changes (`after_start`,
`check_certs`), and engine versions for `version` and `ls`.

This module stays cheap to import (env, config and ls import it): the SSH, crypto and per-OS code
lives in submodules imported when needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from machine.driver import Driver, DriverContext
    from machine.progress import Progress
    from machine.store import MachineConfig, Store


def prepare(store: Store, cfg: MachineConfig, ctx: DriverContext) -> None:
    """Before the driver creates the VM: login key, pinned host key, certificates, seed ISO."""
    from machine.provision.precreate import prepare as _prepare

    _prepare(store, cfg, ctx)


def provision(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> None:
    """After SSH answers: detect the OS, install/configure the engine, check it over TLS."""
    from machine.provision.run import provision as _provision

    _provision(store, cfg, driver, progress)


def after_start(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> None:
    """After a start: re-issue the server certificate if the address changed; update the URL."""
    from machine.provision.run import after_start as _after_start

    _after_start(store, cfg, driver, progress)


def check_certs(store: Store, cfg: MachineConfig, driver: Driver | None = None) -> str | None:
    """Cheap check (no SSH, no crypto): a warning when the machine's engine URL host (or, with a
    driver, its current IP) is not covered by the server certificate's SANs; None when all is well."""
    from machine.provision import certs, tlscheck

    if cfg.engine.get("transport", "tls") != "tls":
        return None
    hosts: list[str] = []
    target = tlscheck.split_url(cfg.engine.get("url", ""))
    if target:
        hosts.append(target[0])
    if driver is not None:
        ip = driver.ip()
        if ip:
            hosts.append(ip)
    missing = [h for h in dict.fromkeys(hosts) if not certs.covers(store, cfg, h)]
    if not missing:
        return None
    return (f"The server certificate of {cfg.name!r} does not cover {', '.join(missing)}; "
            f"run: machine regenerate-certs {cfg.name}")


def engine_version_quick(store: Store, cfg: MachineConfig, timeout: float = 2.0) -> str:
    """The engine version for `ls` (e.g. "v27.3.1"), "Unknown" on any failure."""
    from machine.provision.run import engine_version_quick as _quick

    return _quick(store, cfg, timeout)


def ssh_transport_hint(store: Store, cfg: MachineConfig) -> str:
    """What the docker client needs for an ssh:// engine URL (for `machine env`)."""
    from machine.provision.sshclient import ssh_transport_hint as _hint

    return _hint(store, cfg)


__all__ = ["prepare", "provision", "after_start", "check_certs", "engine_version_quick", "ssh_transport_hint"]
