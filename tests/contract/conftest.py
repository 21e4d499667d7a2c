"""Discovers `harness_*.py` in this folder and parametrizes `driver_harness` (and `driver`) over
every Harness they define. A harness file that fails to import gives a failing test of its own
and does not hide the others."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import Harness, discover  # noqa: E402

ALL = discover(HERE)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "driver_harness" in metafunc.fixturenames:
        ids = [h.id if isinstance(h, Harness) else f"{h[0]}-broken" for h in ALL]
        metafunc.parametrize("driver_harness", ALL, ids=ids, indirect=True)


@pytest.fixture
def driver_harness(request: pytest.FixtureRequest) -> Harness:
    h = request.param
    if not isinstance(h, Harness):
        pytest.fail(h[1], pytrace=False)
    reason = h.skip_reason()
    if reason:
        pytest.skip(reason)
    return h


@pytest.fixture
def driver(driver_harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A driver from the harness; whatever it created is removed again after the test."""
    with contextlib.ExitStack() as stack:
        made = driver_harness.make(tmp_path, monkeypatch)
        drv = stack.enter_context(made) if hasattr(made, "__enter__") else made
        try:
            yield drv
        finally:
            with contextlib.suppress(Exception):
                drv.remove()
