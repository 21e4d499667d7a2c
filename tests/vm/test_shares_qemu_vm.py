"""Shared folders on a real qemu machine (one VM for the module; under TCG a few minutes): the default home
share and a read-only --share, through containers; `machine restart`; virtiofsd processes live and die with
the VM. The mechanism is the fastest this host has (virtiofs with Debian's virtiofsd, as root; else 9p)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vm import shares_checks as checks
from tests.vm.vmhelpers import machine, skip_reason

pytestmark = [pytest.mark.vm, pytest.mark.slow]


def virtiofsd_sockets(machine_dir: Path) -> set[str]:
    """The vhost-user sockets of this machine's running virtiofsd processes (Debian's C virtiofsd forks a child
    into its sandbox: two processes per share, one socket)."""
    found = set()
    for pid in virtiofsd_pids(machine_dir):
        try:
            args = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        found.update(a for a in args if a.startswith("--socket-path="))
    return found


def virtiofsd_pids(machine_dir: Path) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"virtiofsd" in cmd.split(b"\0")[0] and str(machine_dir).encode() in cmd:
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("shares-qemu")
    mp = pytest.MonkeyPatch()
    store = tmp / "store"
    mp.setenv("MACHINE_STORAGE_PATH", str(store))
    mp.setenv("DOCKER_CONFIG", str(tmp / "docker-config"))
    mp.delenv("DOCKER_HOST", raising=False)
    m = None
    try:
        m = checks.make_machine(tmp, "qemu")
        m["dir"] = store / "machines" / m["name"]
        yield m
    finally:
        if m:
            checks.remove(m)
            assert virtiofsd_pids(m["dir"]) == [], "a virtiofsd of the removed machine is still running"
        mp.undo()


def test_inspect_and_ls_show_the_shares(vm) -> None:
    checks.check_inspect_and_ls(vm)


def test_containers_read_and_write_host_folders(vm) -> None:
    checks.check_read_write_semantics(vm)


def test_restart_always_container_sees_the_share_after_machine_restart(vm) -> None:
    mech = machine("inspect", "--format", "{{.DriverData.share_mechanism}}", vm["name"], env=vm["env"]).stdout.strip()
    if mech == "virtiofs":
        assert len(virtiofsd_sockets(vm["dir"])) == 2  # one per share
    checks.check_restart_always_sees_shares(vm)
    if mech == "virtiofs":
        assert len(virtiofsd_sockets(vm["dir"])) == 2  # the old ones went with the old qemu, new ones run
    res = machine("stop", vm["name"], env=vm["env"], timeout=300)
    assert res.returncode == 0, res.stderr
    assert virtiofsd_pids(vm["dir"]) == []  # gone with the VM
