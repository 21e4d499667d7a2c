"""Contract harness for the `hyperkit` driver: a fake `hyperkit` (tests/fakes/hyperkit) that runs as a
real process, writes its pidfile and records a bootpd-format DHCP lease; the macOS/Intel/root checks
are injected. With MACHINE_CONTRACT_REAL=hyperkit (on an Intel Mac) the real hyperkit is used."""

from __future__ import annotations

import sys
from pathlib import Path

import machine.drivers.hyperkit as hk
import pytest
from harness import Harness, context, real_requested
from machine.drivers.hyperkit import HyperKitDriver

from tests.fakes import install


def install_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake hyperkit first on PATH, a placeholder machine OS build, and a leases file; returns it."""
    return install.hyperkit(tmp_path, monkeypatch)


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HyperKitDriver:
    if not real_requested("hyperkit"):
        install_fake(tmp_path, monkeypatch)
    ctx = context(tmp_path, name="contract-hk")
    ctx.options = {"memory": 512, "cpus": 1, "disk_size": 2048}
    return HyperKitDriver(ctx)


def skip_reason() -> str | None:
    if not real_requested("hyperkit"):
        return None
    if sys.platform != "darwin":
        return "MACHINE_CONTRACT_REAL=hyperkit needs an Intel Mac"
    verdict = HyperKitDriver.check_available({})
    return None if verdict.ok else f"MACHINE_CONTRACT_REAL=hyperkit: {verdict.message}"


def hide_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An Intel Mac as root, but without hyperkit anywhere: only the missing tool may be the reason."""
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(hk, "HYPERKIT_DIRS", ())
    install.intel_mac(monkeypatch)


HARNESSES = [
    Harness(id="hyperkit-real" if real_requested("hyperkit") else "hyperkit", driver_cls=HyperKitDriver, make=make,
            skip_reason=skip_reason, created_state="stopped",
            state_timeout=120.0 if real_requested("hyperkit") else 10.0, hide_tool=hide_tool,
            available_with_fake=True),
]
