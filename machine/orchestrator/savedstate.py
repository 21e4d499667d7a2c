"""Saved state: `machine suspend` writes a running machine's memory to disk and powers the VM off; `machine start`
of a Saved machine resumes it (no boot: containers keep running), sets the guest clock, and falls back to a cold
boot, saying so, when the state does not load. Drivers save and load (features.saved_state); the waiting is here."""

from __future__ import annotations

import threading
import time

from machine import waiting
from machine.driver import Driver, State
from machine.errors import InvalidState, MachineError, Unsupported
from machine.orchestrator.hostagent import agent_down, agent_up
from machine.orchestrator.loading import driver_for, require_own
from machine.progress import Progress
from machine.store import MachineConfig, Store

SAVE_TIMEOUT = 300.0  # writing the memory of a large guest to a slow disk
RESUME_TIMEOUT = 120.0  # loading it again
CLOCK_TIMEOUT = 120.0  # an SSH login to a guest that has just resumed (a cold translation cache under TCG)


def suspend(store: Store, name: str, progress: Progress, debug: bool = False, timeout: float = SAVE_TIMEOUT) -> None:
    """Save a running machine's state to disk and power its VM off; `machine start` resumes it."""
    with store.lock(name):
        cfg = store.load(name)
        require_own(cfg, "suspend it")
        driver = driver_for(store, cfg, debug)
        if not driver.features.saved_state:
            raise Unsupported(f"Driver {cfg.driver} cannot save a machine's state (suspend)",
                              f"Stop it instead: machine stop {name}")
        state = driver.status()
        if state == State.SAVED:
            progress.info(f"Machine {name!r} is already suspended (Saved).")
            return
        if state not in (State.RUNNING, State.PAUSED):
            raise InvalidState(f"Machine {name!r} is {state}: only a running machine can be suspended",
                               f"Start it first: machine start {name}")
        blocker = driver.saved_state_blocker()
        if blocker:
            raise Unsupported(blocker, f"Stop it instead: machine stop {name} (a machine without shared folders, "
                                       f"'machine set {name} --no-share', can be suspended).")
        with progress.step(f"Saving the state of {name!r}"):
            agent_down(store.machine_dir(name))  # its forwards go first, while the VM still answers
            try:
                driver.save_state()
                waiting.until(driver.finish_save, timeout=timeout, what=f"{name!r} to save its state", interval=0.1)
            except MachineError:
                if driver.status() == State.RUNNING:
                    agent_up(store, cfg, driver, progress)
                raise
        store.save(cfg)


def resume(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> bool:
    """Start a Saved machine from its saved state. False, after saying why, when the state did not load: it is
    discarded and the VM is off, for the caller to boot it from scratch."""
    name = cfg.name

    def gone() -> str | None:
        state = driver.status()
        if state in (State.STARTING, State.RUNNING, State.PAUSED):
            return None
        return driver.unexpected_exit() or f"the VM is {state}"

    try:
        with progress.step("Resuming VM from its saved state"):
            driver.start()
            store.save(cfg)
            waiting.until(lambda: driver.status() in (State.RUNNING, State.PAUSED), timeout=RESUME_TIMEOUT,
                          what="the saved state to load", interval=0.05, failed=gone)
            if driver.status() == State.PAUSED:  # saved while paused (qemu pauses the guest to save it): run it
                driver.start()
                waiting.until(lambda: driver.status() == State.RUNNING, timeout=30, what="the VM to run",
                              interval=0.05, failed=gone)
    except MachineError as e:
        progress.warn(f"The saved state of {name!r} could not be restored ({e.message}); it is discarded and the "
                      "machine boots from scratch (its containers start as after a reboot)")
        try:
            driver.stop(force=True)
        except MachineError:
            pass
        driver.discard_saved_state()
        return False
    driver.discard_saved_state()
    return True


CLOCK_COMMAND = "date -u -s @{epoch:.3f} >/dev/null"


class ClockSetter:
    """The guest's clock stood still while it was saved: set it to this host's time over SSH. Runs beside the
    wait for the engine (a login costs seconds under TCG); `finish()` waits for it and warns when it failed."""

    def __init__(self, store: Store, cfg: MachineConfig, driver: Driver) -> None:
        self._error = ""
        self._thread = threading.Thread(target=self._run, args=(store, cfg, driver), daemon=True,
                                        name=f"clock-{cfg.name}")
        self._name = cfg.name
        self._thread.start()

    def _run(self, store: Store, cfg: MachineConfig, driver: Driver) -> None:
        from machine.provision.remote import open_session

        try:
            session = open_session(store, cfg, driver, None, timeout=CLOCK_TIMEOUT)
            try:
                session.run(CLOCK_COMMAND.format(epoch=time.time()))
            finally:
                session.close()
        except MachineError as e:
            self._error = e.message
        except Exception as e:  # noqa: BLE001 - reported as a warning: the machine runs either way
            self._error = str(e) or type(e).__name__

    def finish(self, progress: Progress) -> None:
        with progress.step("Setting the guest clock"):
            self._thread.join(CLOCK_TIMEOUT + 10)
        if self._thread.is_alive():
            self._error = "no answer over SSH"
        if self._error:
            progress.warn(f"Could not set the clock of {self._name!r} after the resume ({self._error}); it is "
                          f"behind by the time it was suspended: machine ssh {self._name} date -u -s @$(date +%s)")


def stop_saved(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress, force: bool) -> None:
    """`machine stop` of a Saved machine keeps its state (nothing runs); `machine kill` discards it."""
    if force:
        driver.discard_saved_state()
        progress.info(f"Discarded the saved state of {cfg.name!r}: it boots from scratch at the next start.")
    else:
        progress.info(f"Machine {cfg.name!r} is suspended (Saved): nothing runs, its saved state is kept. "
                      f"'machine start {cfg.name}' resumes it; 'machine kill {cfg.name}' discards the state.")
    agent_down(store.machine_dir(cfg.name))
