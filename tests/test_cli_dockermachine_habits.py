"""docker-machine users' habits (issue #15 points 6, 7): `start` of a none machine fails as docker-machine's
does, `env -u NAME` is refused, an empty machine name is refused everywhere (never taken for `default`), and
env/url/config on a stopped machine fail with "not running" and the command that starts it.

The stopped/running qemu machine needs no VM: its config is what create saves, and a sleeping process
naming the machine dir stands in for a running qemu (its pid in the declared pid file)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fakes.cli import CliResult, run
from machine.drivers.qemu.kvmprobe import kill_pid

from machine import process
from machine.store import MachineConfig, Store


def qemu_machine(store_root: Path, name: str = "dev", pid_file: str | None = "qemu.pid") -> Store:
    store = Store(store_root)
    opts = {"cpus": 2, "memory": 1024, "disk_size": 20480, "image": "machine-os", "accel": "tcg", "restrict": "auto",
            "host_address": "127.0.0.1"}
    data = {"created": True, "boot": "kernel", "ssh_port": 40022, "engine_port": 40376, "ssh_user": "root"}
    if pid_file:
        data["pid_file"] = pid_file
    store.save(MachineConfig(name=name, driver="qemu", driver_options=opts, driver_data=data,
                             engine={"transport": "ssh", "url": "ssh://root@127.0.0.1:40022"},
                             ssh={"user": "root", "key": "id_ed25519", "host": "127.0.0.1", "port": 40022}))
    return store


def fails(code: int, *argv: str) -> CliResult:
    res = run(*argv)
    assert res.crash is None and res.code == code, res
    assert "Traceback" not in res.output
    return res


@pytest.mark.parametrize("command", ["env", "url", "config"])
def test_stopped_machine_is_refused_with_the_start_command(store_root: Path, command: str) -> None:
    qemu_machine(store_root)  # no pid file: never started, or stopped
    res = fails(1, command, "dev")
    assert "Error: Machine 'dev' is not running" in res.err
    assert "Hint: Start it with: machine start dev" in res.err
    assert res.out == ""


def test_stale_pid_file_counts_as_stopped(store_root: Path) -> None:
    store = qemu_machine(store_root)
    mdir = store.machine_dir("dev")
    other = process.spawn([sys.executable, "-c", "import time; time.sleep(60)"])  # alive, but not this machine's
    try:
        (mdir / "qemu.pid").write_text(f"{other}\n")
        assert "is not running" in fails(1, "env", "--shell", "bash", "dev").err
    finally:
        kill_pid(other)
    (mdir / "qemu.pid").write_text("999999999\n")
    assert "is not running" in fails(1, "url", "dev").err


def test_running_machine_answers(store_root: Path) -> None:
    store = qemu_machine(store_root)
    mdir = store.machine_dir("dev")
    pid = process.spawn([sys.executable, "-c", "import time; time.sleep(60)", str(mdir / "console.log")])
    try:
        (mdir / "qemu.pid").write_text(f"{pid}\n")
        assert run("url", "dev").out == "ssh://root@127.0.0.1:40022\n"
        res = run("env", "--shell", "bash", "dev")
        assert res.code == 0 and 'export DOCKER_HOST="ssh://root@127.0.0.1:40022"' in res.out, res
        assert run("config", "dev").out == "-H=ssh://root@127.0.0.1:40022\n"
    finally:
        kill_pid(pid)


def test_machine_without_a_declared_pid_file_is_not_checked(store_root: Path) -> None:
    """Saved before drivers declared it (or a driver whose state needs its hypervisor): the saved URL."""
    qemu_machine(store_root, pid_file=None)
    assert run("url", "dev").out == "ssh://root@127.0.0.1:40022\n"


def test_env_u_with_a_name_is_refused(store_root: Path) -> None:
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:2376", "m")
    res = fails(2, "env", "-u", "m")
    assert "Expected no machine name when the -u flag is present" in res.err
    assert run("env", "--shell", "bash", "-u").code == 0


@pytest.mark.parametrize("argv", [["rm", "-y", ""], ["rm", "-f", "-y", ""], ["url", ""], ["env", ""], ["config", ""],
                                  ["inspect", ""], ["ip", ""], ["status", ""], ["ssh", "", "true"], ["stop", ""],
                                  ["start", ""], ["kill", ""], ["use", ""], ["upgrade", ""], ["provision", ""],
                                  ["create", "-d", "none", "--url", "tcp://127.0.0.1:2376", ""]])
def test_empty_name_is_refused_and_default_is_untouched(store_root: Path, argv: list[str]) -> None:
    assert run("create", "-d", "none", "--url", "tcp://127.0.0.1:2376", "default").code == 0
    res = fails(2, *argv)
    assert "Machine name must not be empty" in res.err
    assert run("ls", "-q").out == "default\n"
