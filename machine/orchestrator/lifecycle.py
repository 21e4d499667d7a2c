"""start, stop, restart, set, rm: a machine's life after create, each under the machine's lock."""

from __future__ import annotations

import os
from typing import Any

from machine import createmarker, registry, waiting
from machine.driver import State, settable_changes
from machine.errors import ConfigError, DriverError, InvalidState, MachineError, NotFound, TimeoutError_, UsageError
from machine.orchestrator import savedstate
from machine.orchestrator.boot import BOOT_TIMEOUT, boot
from machine.orchestrator.engine import sync_context
from machine.orchestrator.hostagent import agent_down, agent_up
from machine.orchestrator.loading import check_saved_options, driver_for, require_own
from machine.progress import Progress
from machine.shares import hostplan
from machine.store import MachineConfig, Store

STOP_TIMEOUT = 60.0


def start(store: Store, name: str, progress: Progress, debug: bool = False) -> None:
    with store.lock(name):
        cfg = store.load(name)
        driver = driver_for(store, cfg, debug)
        state = driver.status()
        if state == State.RUNNING:
            if driver.features.always_running:  # as docker-machine: nothing was started, so say it and fail
                raise InvalidState(f"Machine {name!r} is already running.",
                                   f"Driver {cfg.driver} machines are not started or stopped by machine.")
            progress.info(f"Machine {name!r} is already running.")
            if agent_up(store, cfg, driver, progress):
                progress.info("Its agent (published ports) was not running: started it again.")
            return
        check_saved_options(cfg)
        clock = None
        if state == State.SAVED and savedstate.resume(store, cfg, driver, progress):
            clock = savedstate.ClockSetter(store, cfg, driver) if driver.features.managed_engine else None
        else:  # a resumed guest is up already: no boot to wait for
            boot(store, cfg, driver, progress, BOOT_TIMEOUT)
        if driver.features.managed_engine and not cfg.origin:  # a docker-machine record's certificates stay as they are
            from machine import provision

            provision.after_start(store, cfg, driver, progress)
        if clock:
            clock.finish(progress)
        store.save(cfg)
        agent_up(store, cfg, driver, progress)
        sync_context(store, cfg)


def stop(store: Store, name: str, progress: Progress, *, force: bool = False, debug: bool = False,
         timeout: float = STOP_TIMEOUT) -> None:
    with store.lock(name):
        cfg = store.load(name)
        driver = driver_for(store, cfg, debug)
        state = driver.status()
        if state == State.SAVED:
            savedstate.stop_saved(store, cfg, driver, progress, force)
            return
        if state in (State.STOPPED, State.NOT_CREATED):
            agent_down(store.machine_dir(name))
            progress.info(f"Machine {name!r} is already stopped.")
            return
        verb = "Killing" if force else "Stopping"
        with progress.step(f"{verb} {name!r}"):
            agent_down(store.machine_dir(name))  # its forwards go first, while the VM still answers
            driver.stop(force=force)
            try:
                waiting.until(lambda: driver.status() in (State.STOPPED, State.NOT_CREATED), timeout=timeout,
                              what=f"{name!r} to stop", interval=0.3)
            except TimeoutError_:
                if force:
                    raise
                progress.warn(f"{name!r} did not power off within {timeout:.0f} s; killing it")
                driver.stop(force=True)
                waiting.until(lambda: driver.status() in (State.STOPPED, State.NOT_CREATED), timeout=30,
                              what=f"{name!r} to stop after kill", interval=0.3)
        store.save(cfg)


def restart(store: Store, name: str, progress: Progress, debug: bool = False) -> None:
    stop(store, name, progress, debug=debug)
    start(store, name, progress, debug=debug)


def set_options(store: Store, name: str, given: dict[str, Any], debug: bool = False) -> dict[str, tuple[Any, Any]]:
    """Change driver options of a stopped machine (`machine set`); they take effect at the next start.
    Returns {key: (old, new)} for what changed."""
    with store.lock(name):
        cfg = store.load(name)
        require_own(cfg, "change its options")
        changes = settable_changes(registry.get(cfg.driver), cfg.driver_options, given)
        if not changes:
            return {}
        state = driver_for(store, cfg, debug).status()
        if state != State.STOPPED:
            raise InvalidState(f"Machine {name!r} is {state}: its options can change only while it is stopped",
                               f"Stop it first: machine stop {name}")
        cfg.driver_options.update({key: new for key, (_, new) in changes.items()})
        store.save(cfg)
    return changes


def set_shares(store: Store, name: str, shares: list[dict[str, Any]], debug: bool = False
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Replace a stopped machine's shared folders (`machine set --share/--no-share`); the guest mounts the new
    ones at the next start. Returns (old, new)."""
    with store.lock(name):
        cfg = store.load(name)
        old = list(cfg.shares)
        if old == shares:
            return old, shares
        if shares:
            hostplan.require_mechanism(cfg.driver, registry.get(cfg.driver).features.share_mechanisms,
                                       cfg.share_mechanism)
        state = driver_for(store, cfg, debug).status()
        if state != State.STOPPED:
            raise InvalidState(f"Machine {name!r} is {state}: its shared folders can change only while it is stopped",
                               f"Stop it first: machine stop {name}")
        cfg.shares = list(shares)
        cfg.share_errors = []
        from machine.provision.precreate import update_shares

        update_shares(cfg, store.machine_dir(name))
        store.save(cfg)
    return old, shares


def set_share_mechanism(store: Store, name: str, choice: str, debug: bool = False) -> tuple[str, str]:
    """`machine set --share-mechanism`: how a stopped machine's shares reach the guest from its next start
    (validated against the driver's mechanisms and this host). Returns (old, new)."""
    from machine.shares import mechanisms

    with store.lock(name):
        cfg = store.load(name)
        cls = registry.get(cfg.driver)
        if not cls.features.share_mechanisms:
            raise UsageError(f"Driver {cfg.driver!r} cannot share folders", "Drop --share-mechanism.")
        new = mechanisms.validate_choice(choice, cls.features.share_mechanisms, cls.name)
        old = cfg.share_mechanism or mechanisms.AUTO
        if old == new:
            return old, new
        state = driver_for(store, cfg, debug).status()
        if state != State.STOPPED:
            raise InvalidState(f"Machine {name!r} is {state}: its share mechanism can change only while it is "
                               "stopped", f"Stop it first: machine stop {name}")
        cfg.share_mechanism = new
        cfg.share_errors = []
        store.save(cfg)
    return old, new


def remove(store: Store, name: str, progress: Progress, *, force: bool = False, debug: bool = False) -> None:
    """Remove the VM, the machine directory and the machine's docker context, all under the machine's lock
    (so a concurrent `use` either finishes first or finds no machine). With force, remove the directory even
    when the driver fails (or the config cannot be read). A machine whose create was killed is removed as far
    as its config allows, without -f."""
    from machine.client import dockercontext

    with store.lock(name):
        directory = store.machine_dir(name)
        if not os.path.lexists(directory):
            raise NotFound(f"Host does not exist: {name!r}", "See 'machine ls'.")
        unfinished = createmarker.abandoned(directory)
        cluster = ""
        agent_down(directory)
        try:
            cfg = store.load(name, unfinished=unfinished)
            cluster = str(cfg.swarm.get("cluster") or "")
            notice = removal_notice(store, cfg)
            if notice:
                progress.info(notice)
                store.remove(name)
                return
            driver = driver_for(store, cfg, debug)
            with progress.step(f"Removing {name!r}"):
                driver.remove()
            if driver.features.removal_note:
                progress.info(driver.features.removal_note)
        except MachineError as e:
            if not (force or unfinished):
                e.hint = (e.hint + "\n" if e.hint else "") + f"Use 'machine rm -f {name}' to remove it anyway."
                raise
            if not unfinished or not isinstance(e, ConfigError):
                progress.warn(f"{e}; removing the machine directory anyway")
        except Exception as e:
            if not force:
                raise DriverError(f"Removing {name!r} failed: {e}",
                                  f"Use 'machine rm -f {name}' to remove it anyway.") from e
            progress.warn(f"{e}; removing the machine directory anyway (-f)")
        store.remove(name)
        if cluster:
            from machine.swarm import clusternet

            if clusternet.cluster_dir(store, cluster).exists():
                clusternet.forget_member(store, cluster, name)  # its cluster address becomes free
        try:
            dockercontext.forget_machine(name, store.root)
        except MachineError as e:
            progress.warn(f"the docker context of {name!r} was not removed: {e.message}")


def removal_notice(store: Store, cfg: MachineConfig) -> str:
    """For a docker-machine machine whose driver we do not have: what `rm` does (and does not do)."""
    if not cfg.origin or cfg.origin.get("supported", True):
        return ""
    driver = cfg.origin.get("driver_name", cfg.driver)
    return (f"Machine {cfg.name!r} uses driver {driver}, which machine does not support: only its record "
            f"({store.machine_dir(cfg.name)}) is removed. The VM itself is left alone: remove it with "
            f"docker-machine or the {driver} provider's own tools.")
