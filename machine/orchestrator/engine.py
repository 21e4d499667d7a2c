"""The engine of a running machine: provision, regenerate-certs and upgrade over SSH, the server
certificate that follows a new address, the machine's docker context, and the engine's version.

Each flow takes the machine's lock, loads it, builds its driver, checks it runs, hands the provisioning
code what it needs (config and driver) and saves the config, also after a failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from machine import registry
from machine.driver import State
from machine.errors import MachineError, Unsupported
from machine.orchestrator.loading import driver_for, locked, require_own, require_running
from machine.progress import Progress
from machine.store import MachineConfig, Store

if TYPE_CHECKING:
    from machine.driver import Driver

Flow = Callable[[Store, MachineConfig, "Driver", Progress], None]


def _on_running(store: Store, name: str, progress: Progress, debug: bool, flow: Flow, what: str) -> None:
    with locked(store, name, debug, check=lambda cfg: require_own(cfg, what)) as (cfg, driver):
        if not driver.features.managed_engine:
            raise Unsupported(f"Machine {name!r} (driver {cfg.driver}) is not managed over SSH",
                              "Its engine is configured outside machine.")
        require_running(driver, name)
        flow(store, cfg, driver, progress)
    sync_context(store, cfg)  # a new URL or client certificates reach its docker context


def provision(store: Store, name: str, progress: Progress, debug: bool = False) -> None:
    """Provision a running machine again: detect the OS, install and configure the engine, check it."""
    from machine.provision import run

    _on_running(store, name, progress, debug, run.provision, "reconfigure its engine")


def regenerate_certs(store: Store, name: str, progress: Progress, debug: bool = False) -> None:
    """Issue, upload and use a new server certificate (signed by the current CA)."""
    from machine.provision import run

    _on_running(store, name, progress, debug, run.regenerate, "reconfigure its engine")


def upgrade(store: Store, name: str, progress: Progress, debug: bool = False) -> None:
    """Upgrade the engine of a running machine from its distribution's packages."""
    from machine.provision import run

    _on_running(store, name, progress, debug, run.upgrade, "reconfigure its engine")


def new_ca(store: Store, progress: Progress) -> None:
    """A new CA and client certificate for the store (every machine then needs regenerate-certs)."""
    from machine.provision import run

    run.new_ca(store, progress)


def refresh_engine(store: Store, name: str, progress: Progress, debug: bool = False) -> bool:
    """For env/config/use/ls, which found the machine's address outside its server certificate: re-issue
    and upload the certificate, update the URL and the machine's docker context (what a start does).
    Returns False, changing nothing, when the machine is not running."""
    with store.lock(name):
        cfg = store.load(name)
        if cfg.origin:  # a docker-machine record: its files are not rewritten (machine import converts it)
            return False
        driver = driver_for(store, cfg, debug)
        if not driver.features.managed_engine or driver.status() != State.RUNNING:
            return False
        from machine import provision

        try:
            provision.after_start(store, cfg, driver, progress)
        finally:
            store.save(cfg)
    sync_context(store, cfg)
    return True


def renew_certificate(store: Store, name: str, progress: Progress, debug: bool = False) -> bool:
    """refresh_engine for the read paths (env, config, use, ls): a failure is told as a warning, not
    raised, since the command can still print what it has. True when the certificate was renewed."""
    try:
        return refresh_engine(store, name, progress, debug)
    except MachineError as e:
        progress.warn(f"Could not renew the server certificate of {name!r}: {e.message}")
        return False


def sync_context(store: Store, cfg: MachineConfig) -> None:
    """Rewrite the machine's docker context, if `machine use` made one, from its current engine URL and
    client certificates (after a start moved the URL, or new certificates)."""
    url = str(cfg.engine.get("url") or "")
    if not url or not registry.get(cfg.driver).features.managed_engine:  # an existing engine's URL never moves
        return
    from machine.client import dockercontext

    tls = cfg.engine.get("transport", "tls") == "tls"
    dockercontext.refresh(cfg.name, url, store.machine_dir(cfg.name) if tls else None,
                          f"machine {cfg.name} ({cfg.driver})")


def engine_version(store: Store, name: str, debug: bool = False) -> str:
    """The engine version of a running machine (`machine version NAME`), asked over TLS or SSH."""
    from machine.provision import run

    cfg = store.load(name)
    driver = driver_for(store, cfg, debug)
    require_running(driver, name)
    return run.engine_version(store, cfg, driver)
