"""A model VM with a saved state, for the orchestrator's suspend/resume paths (the real hypervisors are tested
against their own fakes and a real qemu). Its state lives in `vm.json` in the machine folder, so every driver
object the orchestrator builds sees the same VM: {"state": ..., "boots": N, "saved": {...} | None}.

FAKE_SAVED_CORRUPT=1: the saved state does not load (the VM process exits at once, as qemu does).
FAKE_SAVED_SAVE_FAILS=1: saving fails (the hypervisor refuses) and the VM runs on.
Registered for a test with `register(monkeypatch)`; never installed as a package."""

from __future__ import annotations

import json
import os

import pytest

from machine import registry
from machine.driver import Driver, Features, State
from machine.errors import DriverError
from machine.store import MachineConfig, Store

NAME = "fake-saving"


class SavingDriver(Driver):
    name = NAME
    description = "Test driver: a model VM whose state can be saved and resumed."
    features = Features(managed_engine=False, seed=False, saved_state=True)

    def _vm(self) -> dict:
        path = self.ctx.machine_dir / "vm.json"
        return json.loads(path.read_text()) if path.exists() else {"state": "stopped", "boots": 0, "saved": None}

    def _put(self, vm: dict) -> None:
        (self.ctx.machine_dir / "vm.json").write_text(json.dumps(vm))

    def create(self) -> None:
        self._put(self._vm())

    def start(self) -> None:
        vm = self._vm()
        if vm["state"] == "running":
            return
        if vm["saved"] is not None:
            if os.environ.get("FAKE_SAVED_CORRUPT"):
                vm.update(state="crashed", exit="load of migration failed: Invalid argument")
            else:
                vm.update(state="running", uptime=vm["saved"]["uptime"], resumed=vm.get("resumed", 0) + 1)
        else:
            vm.update(state="running", uptime=0, boots=vm["boots"] + 1)
        self._put(vm)

    def stop(self, force: bool = False) -> None:
        vm = self._vm()
        vm.update(state="stopped", exit="")
        self._put(vm)

    def remove(self) -> None:
        (self.ctx.machine_dir / "vm.json").unlink(missing_ok=True)

    def status(self) -> State:
        vm = self._vm()
        if vm["state"] == "running":
            return State.RUNNING
        return State.SAVED if vm["saved"] is not None else State.STOPPED

    def unexpected_exit(self) -> str:
        return f"the VM exited: {self._vm().get('exit')}" if self._vm().get("exit") else ""

    def save_state(self) -> None:
        vm = self._vm()
        if os.environ.get("FAKE_SAVED_SAVE_FAILS"):
            raise DriverError("the hypervisor refused to save the VM")
        vm.update(state="saving", saved={"uptime": vm.get("uptime", 0) + 5})
        self._put(vm)

    def finish_save(self) -> bool:
        vm = self._vm()
        if vm["state"] == "saving":  # done on the second look, as a background save would be
            vm["state"] = "saved"
            self._put(vm)
            return False
        return self.status() == State.SAVED

    def discard_saved_state(self) -> None:
        vm = self._vm()
        vm["saved"] = None
        self._put(vm)


def register(monkeypatch: pytest.MonkeyPatch) -> None:
    real_get = registry.get
    monkeypatch.setattr(registry, "get", lambda name: SavingDriver if name == NAME else real_get(name))


def add_machine(store: Store, name: str, state: str = "running") -> MachineConfig:
    cfg = MachineConfig(name=name, driver=NAME, driver_options={}, engine={"transport": "tls", "port": 2376})
    store.make_machine_dir(name)
    store.save(cfg)
    (store.machine_dir(name) / "vm.json").write_text(json.dumps({"state": state, "boots": 1, "uptime": 100,
                                                                  "saved": None}))
    return cfg


def vm(store: Store, name: str) -> dict:
    return json.loads((store.machine_dir(name) / "vm.json").read_text())
