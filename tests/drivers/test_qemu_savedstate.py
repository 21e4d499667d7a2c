"""The qemu driver's saved state against the fake QMP server (its migration as qemu 7.2 does it over fds passed
with SCM_RIGHTS): suspend writes the stream to saved-state.bin and quits qemu, a failed migration lets the guest
run on, shares qemu cannot migrate are refused up front, -incoming defer on the command line, the stream goes back
to qemu with migrate-incoming. The real qemu: tests/vm/test_suspend_vm.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from machine.drivers.qemu import savedstate
from machine.drivers.qemu.kvmprobe import kill_pid, pid_alive
from test_qemu_driver import fake_qemu_process, fake_running_driver
from test_qemu_fakes import STREAM_MAGIC

from machine import machinedir
from machine.driver import State
from machine.errors import DriverError


@pytest.fixture
def running(tmp_path: Path):
    with fake_running_driver(tmp_path) as parts:
        yield parts


def test_suspend_writes_the_stream_then_quits_qemu(running) -> None:
    d, srv, pid = running
    assert d.features.saved_state and d.saved_state_blocker() == ""
    d.save_state()
    assert srv.commands[1:5] == ["stop", "migrate-set-parameters", "closefd", "getfd"]
    assert "migrate" in srv.commands
    assert d.status() == State.STOPPING  # postmigrate: qemu still runs until finish_save quits it
    assert d.finish_save()
    assert not pid_alive(pid) and "quit" in srv.commands
    state = d.ctx.machine_dir / machinedir.SAVED_STATE
    assert state.read_bytes().startswith(STREAM_MAGIC) and state.read_bytes().endswith(srv.memory)
    assert not (d.ctx.machine_dir / machinedir.SAVED_STATE_PART).exists()
    assert d.status() == State.SAVED and d.unexpected_exit() == ""  # quit on purpose: not a crash
    d.discard_saved_state()
    assert d.status() == State.STOPPED


def test_a_failed_migration_lets_the_guest_run_on(running) -> None:
    d, srv, pid = running
    srv.fail_migration = "Unable to write to file: No space left on device"
    d.save_state()
    with pytest.raises(DriverError, match="No space left on device") as e:
        d.finish_save()
    assert "runs on" in e.value.hint
    assert srv.commands[-1] == "cont" and d.status() == State.RUNNING and pid_alive(pid)
    assert not list(d.ctx.machine_dir.glob("saved-state*"))


def test_the_saved_stream_goes_back_with_migrate_incoming(running) -> None:
    d, srv, pid = running
    d.save_state()
    assert d.finish_save()
    # a new qemu (-incoming defer) on the same QMP address
    pid2 = fake_qemu_process(d.ctx.machine_dir)
    (d.ctx.machine_dir / machinedir.QEMU_PID).write_text(f"{pid2}\n")
    srv.on_quit, srv.status, srv.memory = (lambda: kill_pid(pid2)), "inmigrate", b""
    try:
        assert d.status() == State.STARTING
        savedstate.incoming(d)
        assert srv.commands[-1] == "migrate-incoming" and srv.loaded == b"guest memory " * 1000
        assert d.status() == State.PAUSED  # saved paused, so loaded paused: the orchestrator continues it
        d.start()
        assert d.status() == State.RUNNING
    finally:
        kill_pid(pid2)


def test_a_corrupt_stream_makes_qemu_exit(running) -> None:
    d, srv, pid = running
    (d.ctx.machine_dir / machinedir.SAVED_STATE).write_bytes(b"garbage" * 100)
    savedstate.incoming(d)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:  # qemu exits once it has read the stream
        time.sleep(0.02)
    assert not pid_alive(pid)
    assert d.status() == State.SAVED  # the orchestrator sees qemu gone, discards the state and boots


@pytest.mark.parametrize("mechanism,needle", [("virtiofs", "vhost-user-fs (virtiofs)"),
                                              ("9p", "virtio-9p (a mounted 9p export)")])
def test_shares_qemu_cannot_migrate_are_refused_up_front(running, mechanism: str, needle: str) -> None:
    d, srv, pid = running
    d.ctx.shares = [{"tag": "msh0", "host": "/srv", "guest": "/srv", "ro": False}]
    d.data["share_mechanism"] = mechanism
    assert needle in d.saved_state_blocker() and "'dev'" in d.saved_state_blocker()
    d.data["share_mechanism"] = "reverse-sftp"
    assert d.saved_state_blocker() == ""


def test_no_fd_passing_over_tcp_qmp(running) -> None:
    d, srv, pid = running
    d.data["qmp"] = "tcp:127.0.0.1:4444"
    assert "unix QMP socket" in d.saved_state_blocker()


def test_remove_deletes_the_saved_state(running) -> None:
    d, srv, pid = running
    d.save_state()
    assert d.finish_save()
    d.remove()
    assert list(d.ctx.machine_dir.iterdir()) == [] and d.status() == State.NOT_CREATED


def test_start_after_an_interrupted_suspend_runs_the_guest_on(running) -> None:
    d, srv, pid = running
    d.save_state()  # ... and the suspend was killed before finish_save quit qemu
    assert d.status() == State.STOPPING
    d.start()
    assert srv.commands[-1] == "cont" and d.status() == State.RUNNING and pid_alive(pid)
    assert not list(d.ctx.machine_dir.glob("saved-state*"))
