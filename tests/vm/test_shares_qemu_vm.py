"""Shared folders on a real qemu machine (one VM for the module; under TCG a few minutes): the default home
share and a read-only --share, through containers; `machine restart`; virtiofsd processes live and die with
the VM. The mechanism is the fastest this host has (virtiofs with Debian's virtiofsd, as root; else 9p)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vm import shares_checks as checks
from tests.vm.vmhelpers import machine, pids_of, skip_reason

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
    return pids_of("virtiofsd", str(machine_dir))


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory):
    with checks.module_machine(tmp_path_factory, "qemu", skip_reason()) as m:
        yield m
    assert virtiofsd_pids(m["dir"]) == [], "a virtiofsd of the removed machine is still running"


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
