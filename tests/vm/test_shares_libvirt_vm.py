"""Shared folders on a real libvirt machine (qemu:///system, one VM for the module): the default home share and
a read-only --share through containers, and `machine restart`. libvirt runs virtiofsd itself (`<filesystem>`
with the virtiofs driver and memfd shared memory) where virtiofsd exists, else 9p."""

from __future__ import annotations

import pytest

from tests.vm import shares_checks as checks
from tests.vm.vmhelpers import skip_reason

pytestmark = [pytest.mark.vm, pytest.mark.slow]


def _libvirt_reason() -> str | None:
    try:
        import libvirt
    except ImportError:
        return "libvirt-python is not installed"
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    try:
        libvirt.open("qemu:///system").close()
    except libvirt.libvirtError as e:
        return f"libvirtd is not reachable (start it: libvirtd -d): {e}"
    return None


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory):
    reason = skip_reason() or _libvirt_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("shares-libvirt")
    mp = pytest.MonkeyPatch()
    mp.setenv("MACHINE_STORAGE_PATH", str(tmp / "store"))
    mp.setenv("DOCKER_CONFIG", str(tmp / "docker-config"))
    mp.delenv("DOCKER_HOST", raising=False)
    m = None
    try:
        m = checks.make_machine(tmp, "libvirt")
        yield m
    finally:
        if m:
            checks.remove(m)
        mp.undo()


def test_inspect_and_ls_show_the_shares(vm) -> None:
    checks.check_inspect_and_ls(vm)


def test_containers_read_and_write_host_folders(vm) -> None:
    checks.check_read_write_semantics(vm)


def test_restart_always_container_sees_the_share_after_machine_restart(vm) -> None:
    checks.check_restart_always_sees_shares(vm)
