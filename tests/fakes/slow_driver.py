"""A fake driver for tests: its state, URL and a delay before answering come from its options.

Registered for a test with `register(monkeypatch)`; never installed as a package.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from machine import registry
from machine.driver import Driver, Features, Option, State
from machine.errors import DriverError
from machine.store import MachineConfig, Store

NAME = "fake"


class FakeDriver(Driver):
    name = NAME
    description = "Test driver: answers status after `delay` seconds with `state`."
    features = Features(power=True, managed_engine=False, seed=False)
    options = (
        Option("state", "State to report", default="Running"),
        Option("delay", "Seconds status() sleeps", default=0.0, type=float),
        Option("url", "Engine URL", default="tcp://127.0.0.1:2376"),
        Option("fail", "Message status() raises as a DriverError", default=""),
    )

    def create(self) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self, force: bool = False) -> None:
        pass

    def remove(self) -> None:
        pass

    def status(self) -> State:
        delay = float(self.opt("delay") or 0)
        if delay:
            time.sleep(delay)
        if self.opt("fail"):
            raise DriverError(str(self.opt("fail")))
        return State(self.opt("state") or "Running")

    def url(self) -> str | None:
        return self.opt("url")


def register(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `registry.get("fake")` return FakeDriver for this test (other names unchanged).
    Machines of the fake driver are saved with `add_machine`, not made with `machine create`."""
    real_get = registry.get

    def get(name: str) -> type[Driver]:
        return FakeDriver if name == NAME else real_get(name)

    # registry.names() is left alone: `machine create` builds its flags from it once per process,
    # and a test-only driver must not leak into that cached command.
    monkeypatch.setattr(registry, "get", get)


def add_machine(store: Store, name: str, *, state: str = "Running", delay: float = 0.0,
                url: str = "", fail: str = "", labels: list[str] | None = None,
                swarm: dict[str, Any] | None = None) -> MachineConfig:
    """Save a fake machine's config straight into the store (no create needed)."""
    url = url or f"tcp://127.0.0.1:{23000 + len(store.names())}"
    cfg = MachineConfig(name=name, driver=NAME,
                        driver_options={"state": state, "delay": delay, "url": url, "fail": fail},
                        engine={"transport": "tls", "port": 2376, "url": url, "labels": list(labels or [])},
                        swarm=dict(swarm or {}))
    store.make_machine_dir(name)
    store.save(cfg)
    return cfg
