"""Discovers `harness_*.py` in this folder and parametrizes `driver_harness` (and `driver`) over
every Harness they define. A harness file that fails to import gives a failing test of its own
and does not hide the others."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import Harness  # noqa: E402


def _load(path: Path) -> list[Harness] | str:
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
    if not isinstance(found, list | tuple) or not all(isinstance(h, Harness) for h in found):
        return f"{path.name} must define HARNESSES = [Harness(...), ...]"
    return list(found)


def discover() -> list[Harness | tuple[str, str]]:
    """All harnesses; a broken file appears as (file id, error text)."""
    out: list[Harness | tuple[str, str]] = []
    for path in sorted(HERE.glob("harness_*.py")):
        loaded = _load(path)
        if isinstance(loaded, str):
            out.append((path.stem.removeprefix("harness_"), loaded))
        else:
            out.extend(loaded)
    return out


ALL = discover()


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
