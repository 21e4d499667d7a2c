"""Saved state on a real qemu VM (issue 14 point 3), one VM for the module, in order: a running container and its
published port survive `machine suspend` + `machine start` (same container start time, same kernel boot id, the
guest's uptime goes on: no boot happened), `ls` shows Saved in between, the engine answers over TLS, the guest clock
is set to the host's; then a corrupted state file falls back to a cold boot and says so. Test traffic stays on
127.0.0.1. TCG here: create 1-3 minutes, suspend and resume seconds each."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from bench.portsimage import missing, write_ports_rootfs
from machine import machinedir
from tests.isos.mos_helpers import free_port
from tests.vm.vmhelpers import docker, docker_env, http_get, machine, pids_of, skip_reason

pytestmark = [pytest.mark.vm, pytest.mark.slow]

IMAGE = "saved:test"
CLOCK_SLACK = 5.0  # seconds the guest clock may differ from the host's after a resume


class VM:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.name = f"sv-{uuid.uuid4().hex[:6]}"
        self.env = {**os.environ, "MACHINE_STORAGE_PATH": str(root), "DOCKER_CONFIG": str(tmp / "docker-config")}
        self.env.pop("DOCKER_HOST", None)
        self.dir = root / "machines" / self.name
        self.denv: dict[str, str] = {}
        self.port = 0

    def m(self, *args: str, timeout: float = 900):  # noqa: ANN201
        return machine(*args, env=self.env, timeout=timeout)

    def d(self, *args: str, timeout: float = 300):  # noqa: ANN201
        return docker(*args, env=self.denv, timeout=timeout)

    def guest(self, *command: str) -> str:
        """Output of a command in the guest, run through the engine (a container of the test image)."""
        res = self.d("exec", "keep", *command)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    def state(self) -> str:
        res = self.m("ls", "--filter", f"name={self.name}", "--format", "{{.State}}")
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory):
    reason = skip_reason() or missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("saved")
    v = VM(tmp / "store", tmp)
    res = v.m("create", "-d", "qemu", "--qemu-memory", "768", v.name)
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        v.denv = docker_env(v.name, v.env)
        imp = v.d("import", str(write_ports_rootfs(tmp / "saved.tar")), IMAGE)
        assert imp.returncode == 0, imp.stderr
        yield v
    finally:
        v.m("rm", "-y", "-f", v.name)
        assert not v.dir.exists()
        assert not pids_of("", str(v.dir)), "a qemu or agent of the removed machine is still running"


def test_a_running_container_survives_suspend_and_resume(vm: VM) -> None:
    vm.port = free_port()
    httpd = "mkdir -p /www && echo kept > /www/index.html && exec httpd -f -p 8080 -h /www"
    res = vm.d("run", "-d", "--restart", "no", "--name", "keep", "-p", f"{vm.port}:8080", IMAGE, "sh", "-c", httpd)
    assert res.returncode == 0, res.stderr
    assert http_get(vm.port) == "kept\n"
    started = vm.d("inspect", "-f", "{{.State.StartedAt}}", "keep").stdout.strip()
    boot_id = vm.guest("cat", "/proc/sys/kernel/random/boot_id")
    uptime = float(vm.guest("cat", "/proc/uptime").split()[0])

    res = vm.m("suspend", vm.name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert vm.state() == "Saved"
    assert (vm.dir / machinedir.SAVED_STATE).is_file()
    assert not pids_of("qemu-system", str(vm.dir)), "qemu still runs after suspend"
    time.sleep(8)  # the guest clock stands still meanwhile: the resume must set it

    res = vm.m("start", vm.name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Resuming VM from its saved state" in res.stderr and "from scratch" not in res.stderr, res.stderr
    assert "Waiting for the machine to boot" not in res.stderr
    assert vm.state() == "Running"
    assert not (vm.dir / machinedir.SAVED_STATE).exists()
    assert vm.d("version", "--format", "{{.Server.Version}}").returncode == 0  # TLS engine answers
    assert vm.d("inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", "keep").stdout.strip() == \
        f"true {started}"
    assert vm.guest("cat", "/proc/sys/kernel/random/boot_id") == boot_id  # no boot happened
    assert float(vm.guest("cat", "/proc/uptime").split()[0]) > uptime
    before = time.time()
    clock = vm.m("ssh", vm.name, "date", "+%s.%N")
    after = time.time()
    assert clock.returncode == 0, clock.stderr
    guest_now = float(clock.stdout.strip())
    assert before - CLOCK_SLACK <= guest_now <= after + CLOCK_SLACK, (before, guest_now, after)
    assert http_get(vm.port) == "kept\n"  # its published port is forwarded again


def test_a_corrupt_saved_state_falls_back_to_a_cold_boot(vm: VM) -> None:
    boot_id = vm.guest("cat", "/proc/sys/kernel/random/boot_id")
    res = vm.m("suspend", vm.name)
    assert res.returncode == 0, res.stdout + res.stderr
    state = vm.dir / machinedir.SAVED_STATE
    with open(state, "r+b") as f:  # the stream's header and first sections
        f.write(os.urandom(4096))
    res = vm.m("start", vm.name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"The saved state of '{vm.name}' could not be restored" in res.stderr, res.stderr
    assert "boots from scratch" in res.stderr
    assert not state.exists()
    assert vm.state() == "Running"
    assert vm.d("version", "--format", "{{.Server.Version}}").returncode == 0
    kept = vm.d("inspect", "-f", "{{.State.Running}}", "keep")
    assert kept.stdout.strip() == "false", "a cold boot: the --restart no container is not running"
    new_boot = vm.d("run", "--rm", IMAGE, "cat", "/proc/sys/kernel/random/boot_id")
    assert new_boot.returncode == 0 and new_boot.stdout.strip() != boot_id
