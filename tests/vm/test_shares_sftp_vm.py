"""reverse-sftp shares on a real qemu machine with virtiofs and 9p off (`--share-mechanism reverse-sftp` pins the
fallback): the agent runs `sshfs -o passive` in the guest over the machine's SSH connection and serves SFTP on the
host. The same checks as the 9p/virtiofs modules (tests/vm/shares_checks.py): the default home share and a
read-only --share through containers, owner/modes/symlinks/rename/delete/host changes/large files, and a
`--restart always` container that sees the share after `machine restart` (the agent restarts it once mounted).
One VM for the module."""

from __future__ import annotations

import pytest

from tests.vm import shares_checks as checks
from tests.vm.vmhelpers import machine, skip_reason

pytestmark = [pytest.mark.vm, pytest.mark.slow]


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("shares-sftp")
    mp = pytest.MonkeyPatch()
    store = tmp / "store"
    mp.setenv("MACHINE_STORAGE_PATH", str(store))
    mp.setenv("DOCKER_CONFIG", str(tmp / "docker-config"))
    mp.delenv("MACHINE_SHARE_MECHANISM", raising=False)  # the machine's own choice below pins it
    mp.delenv("DOCKER_HOST", raising=False)
    m = None
    try:
        m = checks.make_machine(tmp, "qemu", ("--share-mechanism", "reverse-sftp"))
        m["dir"] = store / "machines" / m["name"]
        yield m
    finally:
        if m:
            checks.remove(m)
        mp.undo()


def guest(vm, command: str) -> str:
    res = machine("ssh", vm["name"], command, env=vm["env"], timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_the_shares_are_sshfs_mounts_served_by_the_agent(vm) -> None:
    mech = machine("inspect", "--format", "{{json .ShareMechanism}}", vm["name"], env=vm["env"]).stdout.strip()
    assert mech == '{"Chosen":"reverse-sftp","InUse":"reverse-sftp"}', mech
    mounts = [line.split() for line in guest(vm, "cat /proc/mounts").splitlines()]
    kinds = {m[1]: m[2] for m in mounts}
    assert kinds.get(str(vm["home"].resolve())) == "fuse.sshfs" and kinds.get("/extra") == "fuse.sshfs", kinds
    assert not any(m[2] in ("9p", "virtiofs") for m in mounts)
    checks.check_inspect_and_ls(vm)


def test_containers_read_and_write_host_folders(vm) -> None:
    checks.check_read_write_semantics(vm)


def test_restart_always_container_sees_the_share_after_machine_restart(vm) -> None:
    checks.check_restart_always_sees_shares(vm)
