"""Shared folders on a real libvirt machine (qemu:///system, one VM for the module): the default home share and
a read-only --share through containers, and `machine restart`. libvirt runs virtiofsd itself (`<filesystem>`
with the virtiofs driver and memfd shared memory) where virtiofsd exists, else 9p."""

from __future__ import annotations

import pytest

from tests.vm import shares_checks as checks
from tests.vm.vmhelpers import libvirt_reason, skip_reason

pytestmark = [pytest.mark.vm, pytest.mark.slow]


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory):
    with checks.module_machine(tmp_path_factory, "libvirt", skip_reason() or libvirt_reason()) as m:
        yield m


def test_inspect_and_ls_show_the_shares(vm) -> None:
    checks.check_inspect_and_ls(vm)


def test_containers_read_and_write_host_folders(vm) -> None:
    checks.check_read_write_semantics(vm)


def test_restart_always_container_sees_the_share_after_machine_restart(vm) -> None:
    checks.check_restart_always_sees_shares(vm)
