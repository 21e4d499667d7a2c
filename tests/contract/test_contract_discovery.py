"""The harness discovery itself: good files are loaded, broken ones are reported, ids are unique."""

from __future__ import annotations

from pathlib import Path

from harness import Harness, discover

HERE = Path(__file__).parent


def test_discovery_reports_broken_files_and_keeps_the_others(tmp_path: Path) -> None:
    (tmp_path / "harness_good.py").write_text(
        "from harness import Harness\n"
        "from machine.drivers.none import NoneDriver\n"
        "HARNESSES = [Harness(id='good', driver_cls=NoneDriver, make=lambda t, m: None)]\n")
    (tmp_path / "harness_broken.py").write_text("import no_such_module_here\n")
    (tmp_path / "harness_empty.py").write_text("HARNESSES = 'nope'\n")
    (tmp_path / "not_a_harness.py").write_text("raise SystemExit('must not be imported')\n")
    found = discover(tmp_path)
    good = [h for h in found if isinstance(h, Harness)]
    broken = dict(h for h in found if not isinstance(h, Harness))
    assert [h.id for h in good] == ["good"]
    assert "ModuleNotFoundError" in broken["broken"]
    assert "must define HARNESSES" in broken["empty"]


def test_repository_harnesses_have_unique_ids() -> None:
    ids = [h.id if isinstance(h, Harness) else h[0] for h in discover(HERE)]
    assert len(ids) == len(set(ids)), ids
    assert {"none", "virtualbox", "hyperkit"} <= {i.removesuffix("-real") for i in ids}
