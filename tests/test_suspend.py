"""`machine suspend` and the resume in `machine start` (issue 14 point 3), through the CLI and the orchestrator,
on a model VM with a saved state (tests/fakes/saving_driver.py): Saved in ls/status, a resume keeps the guest's
uptime (no boot), a state that does not load falls back to a cold boot and says so, drivers that cannot save
refuse by name. The real hypervisors: tests/drivers (qemu over QMP, VirtualBox, Hyper-V fakes), tests/vm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import saving_driver, slow_driver
from fakes.cli import run

from machine.errors import InvalidState, Unsupported
from machine.store import MachineConfig, Store


@pytest.fixture
def store(store_root: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    saving_driver.register(monkeypatch)
    slow_driver.register(monkeypatch)
    monkeypatch.delenv("FAKE_SAVED_CORRUPT", raising=False)
    monkeypatch.delenv("FAKE_SAVED_SAVE_FAILS", raising=False)
    return Store(store_root)


def state_of(name: str) -> str:
    res = run("status", name)
    assert res.code == 0, res
    return res.out.strip()


def ls_state(name: str) -> str:
    res = run("ls", "--format", "json")
    assert res.code == 0, res
    return next(r["State"] for r in json.loads(res.out) if r["Name"] == name)


def test_suspend_then_start_resumes_without_a_boot(store: Store) -> None:
    saving_driver.add_machine(store, "m1")
    res = run("suspend", "m1")
    assert res.code == 0, res
    assert "Saving the state of 'm1'" in res.err
    assert state_of("m1") == "Saved" and ls_state("m1") == "Saved"
    res = run("start", "m1")
    assert res.code == 0, res
    assert "Resuming VM from its saved state" in res.err and "boots from scratch" not in res.err
    vm = saving_driver.vm(store, "m1")
    assert vm["state"] == "running" and vm["boots"] == 1 and vm["resumed"] == 1
    assert vm["uptime"] == 105  # the uptime it was saved with: it went on, not from 0
    assert vm["saved"] is None, "the saved state is dropped once the VM runs from it"
    assert state_of("m1") == "Running"


def test_a_state_that_does_not_load_falls_back_to_a_cold_boot(store: Store,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    saving_driver.add_machine(store, "m1")
    assert run("suspend", "m1").code == 0
    monkeypatch.setenv("FAKE_SAVED_CORRUPT", "1")
    res = run("start", "m1")
    assert res.code == 0, res
    assert "The saved state of 'm1' could not be restored" in res.err
    assert "load of migration failed" in res.err and "boots from scratch" in res.err
    vm = saving_driver.vm(store, "m1")
    assert vm["state"] == "running" and vm["boots"] == 2 and vm["uptime"] == 0 and vm["saved"] is None


def test_several_machines_are_suspended_in_one_command(store: Store) -> None:
    saving_driver.add_machine(store, "a")
    saving_driver.add_machine(store, "b")
    res = run("suspend", "a", "b")
    assert res.code == 0, res
    assert state_of("a") == "Saved" and state_of("b") == "Saved"


def test_suspend_refuses_a_stopped_machine_and_says_how_to_start_it(store: Store) -> None:
    saving_driver.add_machine(store, "m1", state="stopped")
    res = run("suspend", "m1")
    assert res.code == InvalidState.exit_code, res
    assert "'m1' is Stopped: only a running machine can be suspended" in res.err
    assert "machine start m1" in res.err and res.crash is None


def test_suspending_a_saved_machine_again_changes_nothing(store: Store) -> None:
    saving_driver.add_machine(store, "m1")
    assert run("suspend", "m1").code == 0
    res = run("suspend", "m1")
    assert res.code == 0 and "already suspended" in res.err, res
    assert saving_driver.vm(store, "m1")["saved"] == {"uptime": 105}


def test_a_driver_that_cannot_save_refuses_by_name(store: Store) -> None:
    slow_driver.add_machine(store, "plain")
    res = run("suspend", "plain")
    assert res.code == Unsupported.exit_code, res
    assert "Driver fake cannot save a machine's state" in res.err and "machine stop plain" in res.err


def test_hyperkit_machines_cannot_be_suspended(store: Store) -> None:
    cfg = MachineConfig(name="hk", driver="hyperkit", driver_options={}, engine={"transport": "tls"})
    store.make_machine_dir("hk")
    store.save(cfg)
    res = run("suspend", "hk")
    assert res.code == Unsupported.exit_code, res
    assert "Driver hyperkit cannot save a machine's state" in res.err


def test_a_failed_save_leaves_the_machine_running(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    saving_driver.add_machine(store, "m1")
    monkeypatch.setenv("FAKE_SAVED_SAVE_FAILS", "1")
    res = run("suspend", "m1")
    assert res.code != 0 and "the hypervisor refused to save the VM" in res.err, res
    assert state_of("m1") == "Running"


def test_stop_keeps_a_saved_state_and_kill_discards_it(store: Store) -> None:
    saving_driver.add_machine(store, "m1")
    assert run("suspend", "m1").code == 0
    res = run("stop", "m1")
    assert res.code == 0 and "suspended (Saved)" in res.err and "machine kill m1" in res.err, res
    assert state_of("m1") == "Saved"
    res = run("kill", "m1")
    assert res.code == 0 and "Discarded the saved state of 'm1'" in res.err, res
    assert state_of("m1") == "Stopped"
    assert run("start", "m1").code == 0
    assert saving_driver.vm(store, "m1")["boots"] == 2  # a cold boot

