"""A machine's host agent (machine/agent/): it forwards the ports containers publish to this host. Started after
a create or start, stopped before a stop, a remove or the undo of a create."""

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

    if not control.wanted(cfg, driver):
        return False
    pid, started = control.start(store.root, cfg.name, store.machine_dir(cfg.name))
    if started:
        log.debug("agent of %r started (pid %d)", cfg.name, pid)
    return started


def agent_down(machine_dir: Path) -> None:
    """Stop the machine's agent, if one runs (its forwards go first, while the VM still answers)."""
    from machine.agent import control

    control.stop(machine_dir)
