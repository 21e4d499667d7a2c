"""Real VMs with the qemu driver, through the CLI: the whole lifecycle, and a create interrupted
half-way. Needs qemu-system, qemu-img and the built machine OS (python3 isos/build.py, or
MACHINE_OS_DIR); skipped with the reason otherwise. One VM at a time; everything is cleaned up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from machine.drivers.qemu import socket_path
from machine.drivers.qemu.kvmprobe import find_qemu, kill_pid

from machine import hostports, process
from tests.vm.vmhelpers import pids_of

pytestmark = [pytest.mark.vm, pytest.mark.slow]


def _skip_reason() -> str | None:
    if not find_qemu():
        return "qemu-system is not installed (apt install qemu-system-x86 qemu-utils)"
    if not shutil.which("qemu-img"):
        return "qemu-img is not installed (apt install qemu-utils)"
    from machine.errors import MachineError
    from machine.images.catalogue import default_image

    try:
        default_image()
    except MachineError as e:
        return f"the machine OS image is not built: {e.message} ({e.hint})"
    return None


@pytest.fixture(autouse=True)
def _needs_vm_host() -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)


def cli(*args: str, timeout: float = 400) -> process.Result:
    return process.run([sys.executable, "-m", "machine", *args], timeout=timeout)


def qemu_pids(machine_dir: Path) -> list[int]:
    """qemu processes whose command line names this machine dir."""
    return pids_of("qemu-system", str(machine_dir))


def assert_nothing_left(store_root: Path, name: str, used_ports: list[int]) -> None:
    mdir = store_root / "machines" / name
    deadline = time.monotonic() + 10
    while qemu_pids(mdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert qemu_pids(mdir) == [], "a qemu process of the removed machine is still running"
    assert not mdir.exists(), f"left behind: {sorted(p.name for p in mdir.iterdir())}"
    assert not socket_path(mdir).exists()
    for port in used_ports:
        assert hostports.port_free(port), f"port {port} is still taken"


@pytest.fixture
def vm_cleanup(store_root: Path):
    """Kill whatever qemu a failed test left behind."""
    yield
    for pid in qemu_pids(store_root / "machines"):
        kill_pid(pid)


def driver_data(store_root: Path, name: str) -> dict:
    return json.loads((store_root / "machines" / name / "config.json").read_text())["driver_data"]


def state(name: str) -> str:
    return cli("status", name, timeout=30).stdout.strip()


def wait_state(name: str, wanted: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    current = ""
    while time.monotonic() < deadline:
        current = state(name)
        if current == wanted:
            return current
        time.sleep(1)
    return current


def test_lifecycle_through_the_cli(store_root: Path, vm_cleanup) -> None:
    name = "qvm"
    created = cli("create", "-d", "qemu", name)
    assert created.ok, created.stderr
    data = driver_data(store_root, name)
    used = [data["ssh_port"], data["engine_port"]]
    assert state(name) == "Running"
    assert cli("ip", name).stdout.strip() == "127.0.0.1"

    out = cli("ssh", name, "cat", "/proc/sys/kernel/hostname", timeout=60)
    assert out.ok and out.stdout.strip() == name, out.stderr

    stopped = cli("stop", name, timeout=120)
    assert stopped.ok, stopped.stderr
    assert state(name) == "Stopped"
    assert qemu_pids(store_root / "machines" / name) == []

    started = cli("start", name)
    assert started.ok, started.stderr
    assert state(name) == "Running"

    killed = cli("kill", name, timeout=60)
    assert killed.ok, killed.stderr
    assert state(name) == "Stopped"

    removed = cli("rm", "-y", name, timeout=60)
    assert removed.ok, removed.stderr
    assert_nothing_left(store_root, name, used)


def test_create_interrupted_during_boot_leaves_nothing_or_a_removable_machine(store_root: Path, vm_cleanup) -> None:
    name = "qint"
    mdir = store_root / "machines" / name
    proc = subprocess.Popen([sys.executable, "-m", "machine", "create", "-d", "qemu", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the VM is booting
            console = mdir / "console.log"
            if console.exists() and console.stat().st_size > 0:
                break
            assert proc.poll() is None, proc.communicate()[1].decode()
            time.sleep(0.2)
        else:
            pytest.fail("the VM did not start booting within 120 s")
        used = []
        try:
            data = json.loads((mdir / "config.json").read_text())["driver_data"]
            used = [data["ssh_port"], data["engine_port"]]
        except (OSError, ValueError, KeyError):
            pass
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, "an interrupted create must not report success"
    assert b"Traceback" not in err, err.decode()
    if mdir.exists():  # not rolled back: rm must remove it completely
        removed = cli("rm", "-y", "-f", name, timeout=60)
        assert removed.ok, removed.stderr
    assert_nothing_left(store_root, name, used)
