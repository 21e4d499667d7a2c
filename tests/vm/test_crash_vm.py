"""Issue 13 §4 on real qemu VMs: `kill -9` of `machine create -d qemu` once qemu runs (the machine must show as
broken, not Running, and `rm -y` must remove it and its qemu); and qemu killed under a running machine (`ls` and
`status` must say it crashed, not just Stopped). One VM at a time, each a few minutes at most under TCG."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from machine.process import pid_alive
from tests.vm.vmhelpers import machine, skip_reason

pytestmark = [pytest.mark.vm, pytest.mark.slow]


def qemu_pid(store_root: Path, name: str) -> int | None:
    try:
        pid = int((store_root / "machines" / name / "qemu.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


@pytest.fixture
def vm_env(store_root: Path) -> dict[str, str]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    return dict(os.environ)


def test_kill_9_of_a_qemu_create_shows_broken_and_rm_removes_it(store_root: Path, vm_env: dict[str, str]) -> None:
    name = f"k9-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-m", "machine", "create", "-d", "qemu", "--qemu-memory", "512",
                             "--qemu-cpus", "1", name], env=vm_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pid = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and pid is None and proc.poll() is None:
            pid = qemu_pid(store_root, name)
            time.sleep(0.2)
        assert pid is not None, "qemu never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert pid_alive(pid), "the VM should outlive its killed create (that is the case under test)"
        ls = machine("ls", env=vm_env, timeout=120)
        row = next(line for line in ls.stdout.splitlines() if line.startswith(name))
        assert "did not finish" in row and "Running" not in row, ls.stdout
        status = machine("status", name, env=vm_env)
        assert status.returncode != 0 and "did not finish" in status.stderr, status
        rm = machine("rm", "-y", name, env=vm_env, timeout=120)
        assert rm.returncode == 0, rm.stdout + rm.stderr
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        assert not pid_alive(pid), "rm left the VM running"
        assert not (store_root / "machines" / name).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        machine("rm", "-f", "-y", name, env=vm_env, timeout=120)


def test_qemu_killed_under_a_running_machine_is_reported_as_crashed(store_root: Path,
                                                                    vm_env: dict[str, str]) -> None:
    name = f"cr-{uuid.uuid4().hex[:6]}"
    try:
        res = machine("create", "-d", "qemu", name, env=vm_env,
                      timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        pid = qemu_pid(store_root, name)
        assert pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        ls = machine("ls", env=vm_env, timeout=120)
        row = next(line for line in ls.stdout.splitlines() if line.startswith(name))
        assert "Stopped" in row and "crashed or was killed" in row, ls.stdout
        status = machine("status", name, env=vm_env)
        assert status.stdout.strip() == "Stopped" and "crashed or was killed" in status.stderr, status
        # a stop on purpose is not a crash
        start = machine("start", name, env=vm_env, timeout=900)
        assert start.returncode == 0, start.stdout + start.stderr
        kill = machine("kill", name, env=vm_env, timeout=120)
        assert kill.returncode == 0, kill.stdout + kill.stderr
        ls = machine("ls", env=vm_env, timeout=120)
        row = next(line for line in ls.stdout.splitlines() if line.startswith(name))
        assert "Stopped" in row and "crashed" not in row, ls.stdout
    finally:
        machine("rm", "-f", "-y", name, env=vm_env, timeout=300)
