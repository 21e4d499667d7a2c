"""Contract harness for the `none` driver: always RUNNING, start and stop refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Harness, context
from machine.drivers.none import NoneDriver


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NoneDriver:
    return NoneDriver(context(tmp_path, options={"url": "tcp://127.0.0.1:2376"}, seed=False))


HARNESSES = [
    Harness(id="none", driver_cls=NoneDriver, make=make, created_state="running", needs_tool=False),
]
