"""A machine's host agent (machine/agent/): it forwards the ports containers publish to this host and mounts
reverse-sftp shares. Started after a create or start, stopped before a stop, a remove or the undo of a create."""

from __future__ import annotations

import logging
from pathlib import Path

from machine.driver import Driver
from machine.progress import Progress
from machine.store import MachineConfig, Store

log = logging.getLogger("machine.orchestrator")


def agent_up(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> bool:
    """Start the machine's agent (it forwards the ports containers publish) unless it runs or the machine
    has none (no guest reached over SSH, no forward path, or an engine reached over SSH). True when it was
    started now."""
    from machine.agent import control

    wanted = control.wanted(cfg, driver)
    started = False
    if wanted:
        pid, started = control.start(store.root, cfg.name, store.machine_dir(cfg.name))
        if started:
            log.debug("agent of %r started (pid %d)", cfg.name, pid)
    _wait_host_served_shares(store, cfg, driver, progress, wanted)
    return started


def _wait_host_served_shares(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress, agent: bool) -> None:
    """reverse-sftp shares are mounted by the agent after boot: wait for them, so a `docker run -v` after the
    command sees them; what did not mount is saved (ls shows it in ERRORS) and told."""
    from machine.shares import hostplan, mechanisms

    mechanism = driver.data.get("share_mechanism", "")
    if not cfg.shares or mechanism not in mechanisms.HOST_SERVED:
        return
    with progress.step(f"Mounting shared folders ({mechanism})"):
        errors = hostplan.wait_host_served(store.machine_dir(cfg.name), mechanism, driver.ctx.shares, agent)
    if errors is not None:
        cfg.share_errors = errors
        store.save(cfg)
        for err in errors:
            progress.warn(err)


def agent_down(machine_dir: Path) -> None:
    """Stop the machine's agent, if one runs (its forwards go first, while the VM still answers)."""
    from machine.agent import control

    control.stop(machine_dir)
