"""How the whole suite runs on a 2-core host (CI's `python3 -m pytest -q`: no test paths given): in two pytest-xdist
workers. The real-VM modules are split into two lanes of about equal length (VM_LANES, measured under TCG). A lane
is one unit of work: its modules run one after another in one worker, so a module's VM fixture is made once and at
most two VM workloads run at a time, one per worker. Every other module is a unit of its own (module fixtures and
the order inside a module stay as they are) that goes to whichever worker is free: the lanes start first, and the
other tests fill in when a lane ends. Modules of tests/install share the session fixture `installed` (a wheel in a
fresh venv), so they are one lane's.

Opt-in: only with MACHINE_TEST_LANES=1 in the environment. The first clean-clone CI run in lanes (2026-11-29) had
VM tests fail with two guests at once (see the commit): CI runs in one process until the lanes are measured green.
With test paths, `-n`, `--dist`, `-p no:xdist`, `--collect-only`, or without pytest-xdist installed, pytest runs in
one process as before."""

from __future__ import annotations

import os

import pytest

WORKERS = 2
# lane -> (module or folder, seconds in the last clean-clone CI run: pytest --durations, load ~2-3), in the order
# they run
VM_LANES = {
    "vm-a": (
        ("tests/vm/test_swarm_vm.py", 654),
        ("tests/isos/", 410),
        ("tests/vm/test_debian_vm.py", 247),
        ("tests/install/", 250),  # non-root qemu and libvirt session VMs, and the installed CLI's tests
        ("tests/drivers/test_qemu_vm.py", 160),
        ("tests/vm/test_crash_vm.py", 115),
    ),
    "vm-b": (
        ("tests/vm/test_ports_vm.py", 535),
        ("tests/vm/test_shares_qemu_vm.py", 325),
        ("tests/vm/test_shares_libvirt_vm.py", 322),
        ("tests/vm/test_shares_sftp_vm.py", 285),
        ("tests/drivers/test_libvirt_vm.py", 250),
        ("tests/vm/test_provision_vm.py", 215),
    ),
}
# a VM module not named above (tests/vm/*, tests/isos/*, *_vm.py) runs last in the lane with less work
DEFAULT_LANE = min(VM_LANES, key=lambda lane: sum(seconds for _, seconds in VM_LANES[lane]))


def _place(nodeid: str) -> tuple[int, int, str]:
    """(lane rank, position in the lane, unit) of a test id; other modules: rank len(VM_LANES), unit = module."""
    path = nodeid.split("::", 1)[0]
    for rank, (lane, modules) in enumerate(VM_LANES.items()):
        for pos, (prefix, _) in enumerate(modules):
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                return rank, pos, lane
    if path.startswith(("tests/vm/", "tests/isos/")) or path.endswith("_vm.py"):
        return list(VM_LANES).index(DEFAULT_LANE), len(VM_LANES[DEFAULT_LANE]), DEFAULT_LANE
    return len(VM_LANES), 0, path


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    if os.environ.get("MACHINE_TEST_LANES") != "1":
        return
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return
    opt = config.option
    if opt.numprocesses is not None or opt.dist != "no" or opt.collectonly or \
            config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return
    opt.numprocesses = WORKERS
    opt.dist = "loadscope"  # scheduled by LaneScheduling (pytest_xdist_make_scheduler)
    opt.loadscopereorder = False  # units in collection order: the lanes first
    config.stash[_LANES] = True


_LANES = pytest.StashKey[bool]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # noqa: ANN001 - xdist's WorkerController
    if node.config.stash.get(_LANES, False):
        node.workerinput["machine_lanes"] = True


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201
    if not config.stash.get(_LANES, False):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _place(nodeid)[2]

    return LaneScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config, "workerinput", {}).get("machine_lanes"):
        # stable: the collection order inside each module and among the other modules
        items.sort(key=lambda item: _place(item.nodeid)[:2])
