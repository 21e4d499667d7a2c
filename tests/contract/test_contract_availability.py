"""check_available answers (an Availability with a hint) and never raises, also without its tool."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Harness, empty_path

from machine.driver import Availability, option_values


def check(h: Harness) -> Availability:
    cls = h.driver_cls
    verdict = cls.check_available(option_values(cls, {}, environ={}))
    assert isinstance(verdict, Availability), f"check_available returned {verdict!r}"
    if not verdict.ok:
        assert verdict.message.strip(), "an unusable host needs a message"
        assert verdict.hint.strip(), "an unusable host needs a hint saying how to fix it"
    assert isinstance(h.driver_cls.check_available(None), Availability)
    return verdict


def test_check_available_answers_with_the_fake(driver_harness: Harness, driver, tmp_path: Path) -> None:
    verdict = check(driver_harness)
    if driver_harness.available_with_fake:
        assert verdict.ok, f"{verdict.message} ({verdict.hint})"


def test_check_available_without_the_tool(driver_harness: Harness, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (driver_harness.hide_tool or empty_path)(tmp_path, monkeypatch)
    verdict = check(driver_harness)
    if driver_harness.needs_tool:
        assert not verdict.ok, "the tool is hidden, yet the driver says the host can run it"
