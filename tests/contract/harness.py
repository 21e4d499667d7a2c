"""The contract-suite harness: how a driver is set up for the shared driver contract tests.

Each driver ships `tests/contract/harness_<name>.py` defining `HARNESSES = [Harness(...), ...]`.
`conftest.py` discovers those files and runs every contract test once per harness. A harness
says how to build a driver whose hypervisor is a faithful fake (or, with MACHINE_CONTRACT_REAL,
the real tool) and what the driver supports, so one suite fits all drivers.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from machine.driver import Driver, DriverContext, Features

REAL_ENV = "MACHINE_CONTRACT_REAL"


@dataclass(frozen=True)
class Harness:
    """One way to run the contract suite against a driver.

    make(tmp_path, monkeypatch) sets up the fake (PATH, env vars, state dirs) and returns a Driver
    with a DriverContext, or a context manager yielding one (it is exited after the test).
    skip_reason() returns why this harness cannot run here (None: it can).
    """

    id: str
    driver_cls: type[Driver]
    make: Callable[[Path, pytest.MonkeyPatch], Any]
    skip_reason: Callable[[], str | None] = lambda: None
    # What the driver supports is its class's `features` (power, always_running, managed_engine); the
    # lifecycle test adjusts its expectations to that declaration.
    # State right after create(): "stopped", "running" or "any" (either is fine).
    created_state: str = "any"
    # Seconds to wait for a requested state change (ACPI stop is asynchronous on real hypervisors).
    state_timeout: float = 10.0
    # Hides the driver's tool for the "tool missing" availability test; default empties PATH.
    hide_tool: Callable[[Path, pytest.MonkeyPatch], None] | None = None
    # False for drivers that need no external tool (e.g. `none`): hiding it must not make them unusable.
    needs_tool: bool = True
    # True when check_available must say ok once make() has set up the fake (or on a real host).
    available_with_fake: bool = False


    @property
    def features(self) -> Features:
        return self.driver_cls.features


def real_requested(driver: str) -> bool:
    """True when MACHINE_CONTRACT_REAL (a comma-separated list of driver names, or "all") asks for
    the real hypervisor instead of the fake for `driver`."""
    wanted = {w.strip() for w in os.environ.get(REAL_ENV, "").split(",") if w.strip()}
    return driver in wanted or "all" in wanted


def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default hide_tool: PATH holds one empty directory only."""
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))


def context(tmp_path: Path, name: str = "contract", options: dict[str, Any] | None = None,
            seed: bool = True, engine_port: int = 2376) -> DriverContext:
    """A DriverContext with a fresh machine dir (and a placeholder seed file when seed is True;
    real-host harnesses pass their own seed_path)."""
    machine_dir = tmp_path / "machines" / name
    machine_dir.mkdir(parents=True, exist_ok=True)
    seed_path = None
    if seed:
        seed_path = machine_dir / "seed.iso"
        if not seed_path.exists():
            seed_path.write_bytes(b"\0" * 2048)
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    return DriverContext(name=name, machine_dir=machine_dir, options=dict(options or {}), data={},
                         cache_dir=cache, seed_path=seed_path, engine_port=engine_port)


def reopen(driver: Driver) -> Driver:
    """A second driver object for the same machine, built as the orchestrator does for each command
    (from saved options and data: nothing kept in the first object's attributes survives)."""
    import copy

    ctx = driver.ctx
    clone = DriverContext(name=ctx.name, machine_dir=ctx.machine_dir, options=copy.deepcopy(ctx.options),
                          data=copy.deepcopy(ctx.data), cache_dir=ctx.cache_dir, seed_path=ctx.seed_path,
                          engine_port=ctx.engine_port, debug=ctx.debug)
    return type(driver)(clone)


def load_harnesses(path: Path) -> list[Harness] | str:
    """The HARNESSES of one harness file, or why it cannot be used (import error, wrong type)."""
    name = f"machine_contract_{path.stem}"
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as e:  # report it as this harness's failure, not everyone's
        return f"{path.name} failed to import: {type(e).__name__}: {e}"
    found = getattr(module, "HARNESSES", None)
    if not isinstance(found, list | tuple) or not found or not all(isinstance(h, Harness) for h in found):
        return f"{path.name} must define HARNESSES = [Harness(...), ...]"
    return list(found)


def discover(folder: Path) -> list[Harness | tuple[str, str]]:
    """Every harness in folder's harness_*.py files; a broken file appears as (its id, the error)."""
    out: list[Harness | tuple[str, str]] = []
    for path in sorted(folder.glob("harness_*.py")):
        loaded = load_harnesses(path)
        if isinstance(loaded, str):
            out.append((path.stem.removeprefix("harness_"), loaded))
        else:
            out.extend(loaded)
    return out
