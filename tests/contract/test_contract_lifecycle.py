"""The lifecycle every driver must follow, run once per harness (see harness.py)."""

from __future__ import annotations

import time

import pytest
from harness import Harness, reopen

from machine.driver import Driver, SSHEndpoint, State
from machine.errors import MachineError

CREATED = {"stopped": {State.STOPPED}, "running": {State.RUNNING}, "any": {State.STOPPED, State.RUNNING}}


def wait_for(driver: Driver, want: State, timeout: float) -> State:
    deadline = time.monotonic() + timeout
    while True:
        state = driver.status()
        if state == want or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def assert_endpoint(h: Harness, driver: Driver) -> None:
    """While running, an SSH endpoint appears (DHCP-based drivers need a moment for the lease)."""
    if not h.features.managed_engine:
        return
    deadline = time.monotonic() + h.state_timeout
    ep = driver.ssh_endpoint()
    while ep is None and time.monotonic() < deadline and driver.status() == State.RUNNING:
        time.sleep(0.05)
        ep = driver.ssh_endpoint()
    assert isinstance(ep, SSHEndpoint), f"running machine has no SSH endpoint: {ep!r}"
    assert ep.host and ep.user
    assert isinstance(ep.port, int) and 0 < ep.port < 65536


def test_full_lifecycle(driver_harness: Harness, driver: Driver) -> None:
    h = driver_harness
    if h.features.always_running or not h.features.power:
        pytest.skip(f"{h.id} has its own lifecycle (see test_fixed_lifecycle)")
    t = h.state_timeout
    assert driver.status() == State.NOT_CREATED
    assert driver.ssh_endpoint() is None

    driver.create()
    first = driver.status()
    assert first in CREATED[h.created_state], f"state after create: {first}"
    driver.create()  # idempotent
    assert driver.status() == first
    assert reopen(driver).status() == first, "state must come from the hypervisor, not the driver object"
    if first == State.STOPPED:
        assert driver.ssh_endpoint() is None, "SSH endpoint offered while stopped"

    driver.start()
    assert wait_for(driver, State.RUNNING, t) == State.RUNNING
    assert_endpoint(h, driver)
    assert_endpoint(h, reopen(driver))
    driver.start()  # no-op while running
    assert driver.status() == State.RUNNING

    driver.stop()  # ACPI
    assert wait_for(driver, State.STOPPED, t) == State.STOPPED
    assert driver.ssh_endpoint() is None

    driver.start()
    assert wait_for(driver, State.RUNNING, t) == State.RUNNING
    driver.stop(force=True)  # kill
    assert wait_for(driver, State.STOPPED, t) == State.STOPPED
    assert driver.ssh_endpoint() is None

    driver.remove()
    assert driver.status() == State.NOT_CREATED
    assert reopen(driver).status() == State.NOT_CREATED
    driver.remove()  # idempotent
    assert driver.status() == State.NOT_CREATED


def test_remove_running_machine(driver_harness: Harness, driver: Driver) -> None:
    h = driver_harness
    if h.features.always_running or not h.features.power:
        pytest.skip(f"{h.id} cannot start machines")
    driver.create()
    driver.start()
    assert wait_for(driver, State.RUNNING, h.state_timeout) == State.RUNNING
    reopen(driver).remove()  # a fresh driver object (as `machine rm` makes) removes a running machine
    assert driver.status() == State.NOT_CREATED


def test_remove_never_created_is_noop(driver_harness: Harness, driver: Driver) -> None:
    driver.remove()
    driver.remove()
    expected = State.RUNNING if driver_harness.features.always_running else State.NOT_CREATED
    assert driver.status() == expected


def test_fixed_lifecycle(driver_harness: Harness, driver: Driver) -> None:
    """Drivers that cannot start/stop (like `none`): create and remove are idempotent, start and
    stop refuse with a MachineError that carries a hint, and the state does not change."""
    h = driver_harness
    if not h.features.always_running and h.features.power:
        pytest.skip(f"{h.id} follows the full lifecycle")
    driver.create()
    driver.create()
    before = driver.status()
    if h.features.always_running:
        assert before == State.RUNNING
    refused = () if h.features.power else (driver.start, lambda: driver.stop(), lambda: driver.stop(force=True))
    for action in refused:
        with pytest.raises(MachineError) as err:
            action()
        assert err.value.hint, "a refusal must tell the user what to do"
        assert driver.status() == before
    driver.remove()
    driver.remove()
    if h.features.always_running:
        assert driver.status() == State.RUNNING


def test_saved_state(driver_harness: Harness, driver: Driver) -> None:
    """Drivers with features.saved_state: save a running VM (Saved, no endpoint, also for a fresh driver object),
    resume it with start, discard_saved_state is a no-op once it runs and turns a Saved VM into a Stopped one."""
    h = driver_harness
    if not h.features.saved_state:
        pytest.skip(f"{h.id} cannot save a VM's state")
    t = h.state_timeout
    driver.create()
    driver.start()
    assert wait_for(driver, State.RUNNING, t) == State.RUNNING
    driver.save_state()
    deadline = time.monotonic() + t
    while not driver.finish_save():
        assert time.monotonic() < deadline, f"not saved after {t} s: {driver.status()}"
        time.sleep(0.05)
    assert driver.status() == State.SAVED and reopen(driver).status() == State.SAVED
    assert driver.ssh_endpoint() is None
    driver.start()  # resumes
    state = wait_for(driver, State.RUNNING, t)
    if state == State.PAUSED:  # saved paused (qemu), loaded paused: start runs it
        driver.start()
        state = wait_for(driver, State.RUNNING, t)
    assert state == State.RUNNING
    driver.discard_saved_state()
    assert driver.status() == State.RUNNING
    driver.save_state()
    while not driver.finish_save():
        time.sleep(0.05)
    driver.discard_saved_state()
    assert wait_for(driver, State.STOPPED, t) == State.STOPPED
    driver.remove()
    assert driver.status() == State.NOT_CREATED
