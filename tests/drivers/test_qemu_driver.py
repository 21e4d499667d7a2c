"""The qemu driver without a VM: create/remove idempotency, state from the process and a fake QMP
server, stop/kill over QMP, start failing loudly, ports, socket paths."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from machine.drivers.qemu import QemuDriver, cmdline, lifecycle, ports, socket_path
from machine.drivers.qemu.kvmprobe import Verdict, kill_pid, pid_alive
from test_qemu_fakes import FakeQMP, short_socket_path

from machine import hostports, machinedir, process
from machine.driver import DriverContext, SSHEndpoint, State
from machine.errors import DriverError

needs_qemu_img = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img is not installed")


@pytest.fixture
def os_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in machine OS build (the files only; nothing boots in these tests)."""
    d = tmp_path / "machine-os"
    d.mkdir()
    for name in ("vmlinuz", "initrd.img", "machine-os.iso"):
        (d / name).write_bytes(b"x")
    (d / "manifest.json").write_text(json.dumps({"cmdline": "console=ttyS0 quiet machine.root=LABEL=MACHINE_OS"}))
    monkeypatch.setenv("MACHINE_OS_DIR", str(d))
    return d


def make_driver(tmp_path: Path, **options) -> QemuDriver:
    machine_dir = tmp_path / "machines" / "dev"
    machine_dir.mkdir(parents=True, exist_ok=True)
    opts = {"cpus": 2, "memory": 512, "disk_size": 1024, "image": "machine-os", "accel": "tcg", "restrict": "auto"}
    opts.update(options)
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    return QemuDriver(DriverContext(name="dev", machine_dir=machine_dir, options=opts, data={}, cache_dir=cache,
                                    seed_path=machine_dir / "seed.iso"))


def fake_qemu_process(machine_dir: Path) -> int:
    """A long-running process whose command line names the machine dir (as qemu's does), once it does: between fork
    and exec /proc/PID/cmdline is still the parent's (on a loaded host, long enough for the driver to see a pid that
    is not its qemu's)."""
    pid = process.spawn([sys.executable, "-c", "import time; time.sleep(60)", str(machine_dir / "console.log")])
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + 30
    while sys.platform.startswith("linux") and time.monotonic() < deadline:
        try:
            if str(machine_dir).encode() in cmdline.read_bytes():
                break
        except OSError:
            pass
        time.sleep(0.01)
    return pid


@needs_qemu_img
def test_create_makes_a_sparse_data_disk_and_records_what_start_needs(tmp_path: Path, os_dir: Path) -> None:
    d = make_driver(tmp_path)
    assert d.status() == State.NOT_CREATED
    d.create()
    disk = d.ctx.machine_dir / "data.qcow2"
    assert disk.is_file() and disk.stat().st_size < 1 << 20  # sparse: far below the 1 GiB it offers
    assert d.data["boot"] == "kernel" and d.data["kernel"] == str(os_dir / "vmlinuz")
    assert d.data["ssh_user"] == "root"
    assert d.data["ssh_port"] != d.data["engine_port"]
    assert d.data["accel"] == "tcg" and "TCG" in d.notes()[0]
    assert d.status() == State.STOPPED
    assert d.ip() == "127.0.0.1"
    assert d.ssh_endpoint() is None  # only while running
    assert d.engine_address(2376) == ("127.0.0.1", d.data["engine_port"])


@needs_qemu_img
def test_create_and_remove_are_idempotent(tmp_path: Path, os_dir: Path) -> None:
    d = make_driver(tmp_path)
    d.create()
    first = dict(d.data)
    d.create()
    assert d.data == first
    d.remove()
    d.remove()
    assert d.status() == State.NOT_CREATED
    assert sorted(p.name for p in d.ctx.machine_dir.iterdir()) == []


@needs_qemu_img
def test_auto_accel_reports_the_kvm_verdict(tmp_path: Path, os_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import machine.drivers.qemu.kvmprobe

    monkeypatch.setattr(machine.drivers.qemu.kvmprobe, "kvm_verdict",
                        lambda cache_dir: Verdict(False, "failed to set MSR 0x10a"))
    monkeypatch.setattr(sys, "platform", "linux")
    d = make_driver(tmp_path, accel="auto")
    d.create()
    assert d.data["accel"] == "tcg"
    assert "failed to set MSR 0x10a" in d.notes()[0]


def test_create_without_the_machine_os_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MACHINE_OS_DIR", str(tmp_path / "nothing-here"))
    avail = QemuDriver.check_available({"image": "machine-os"})
    assert not avail.ok and "machine os build" in avail.hint


def test_check_available_without_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    avail = QemuDriver.check_available({})
    assert not avail.ok and "not found" in avail.message and "qemu" in avail.hint.lower()


@contextmanager
def fake_running_driver(tmp_path: Path) -> Iterator[tuple[QemuDriver, FakeQMP, int]]:
    """A created driver whose 'qemu' is a sleeping process plus a fake QMP server."""
    d = make_driver(tmp_path)
    (d.ctx.machine_dir / "data.qcow2").write_bytes(b"")
    d.data.update({"created": True, "boot": "kernel", "ssh_port": 40022, "engine_port": 40376,
                   "engine_guest_port": 2376, "ssh_user": "root"})
    pid = fake_qemu_process(d.ctx.machine_dir)
    (d.ctx.machine_dir / machinedir.QEMU_PID).write_text(f"{pid}\n")
    path = short_socket_path()
    srv = FakeQMP(path, on_quit=lambda: kill_pid(pid))
    d.data["qmp"] = srv.address
    try:
        yield d, srv, pid
    finally:
        srv.close()
        kill_pid(pid)
        shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture
def running(tmp_path: Path, os_dir: Path):
    with fake_running_driver(tmp_path) as parts:
        yield parts


def test_status_maps_the_qmp_run_state(running) -> None:
    d, srv, pid = running
    for qemu_state, expected in [("running", State.RUNNING), ("paused", State.PAUSED),
                                 ("shutdown", State.STOPPING), ("guest-panicked", State.ERROR)]:
        srv.status = qemu_state
        got = d.status()
        assert got == expected, (qemu_state, got, d._pid(), pid_alive(pid), srv.commands[-4:])
    assert d.ssh_endpoint() == SSHEndpoint("127.0.0.1", 40022, "root")


def test_dead_process_is_stopped_and_stale_pid_files_do_not_count(running) -> None:
    d, srv, pid = running
    kill_pid(pid)
    assert d.status() == State.STOPPED
    assert d.ssh_endpoint() is None
    # a live pid that is not our qemu (pid reuse) does not count either
    other = process.spawn([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (d.ctx.machine_dir / machinedir.QEMU_PID).write_text(f"{other}\n")
        assert d.status() == State.STOPPED
    finally:
        kill_pid(other)


def test_unanswered_qmp_is_starting_then_unknown_and_never_hangs(running) -> None:
    import time

    d, srv, pid = running
    srv.close()
    d.data["started_at"] = time.time()
    t = time.monotonic()
    assert d.status() == State.STARTING
    d.data["started_at"] = time.time() - 300
    assert d.status() == State.UNKNOWN
    assert time.monotonic() - t < 5


def test_stop_sends_system_powerdown(running) -> None:
    d, srv, pid = running
    d.stop()
    assert "system_powerdown" in srv.commands
    assert pid_alive(pid)  # ACPI is asynchronous: the orchestrator waits


def test_kill_quits_over_qmp(running) -> None:
    d, srv, pid = running
    d.stop(force=True)
    assert "quit" in srv.commands
    assert not pid_alive(pid)
    assert d.status() == State.STOPPED


def test_kill_falls_back_to_sigkill_when_qmp_is_gone(running) -> None:
    d, srv, pid = running
    srv.close()
    d.stop(force=True)
    assert not pid_alive(pid)


def test_start_resumes_a_paused_vm(running) -> None:
    d, srv, pid = running
    srv.status = "paused"
    d.start()
    assert "cont" in srv.commands and d.status() == State.RUNNING


def test_remove_kills_and_deletes_everything(running) -> None:
    d, srv, pid = running
    (d.ctx.machine_dir / "console.log").write_text("boot")
    assert d._pid() == pid
    d.remove()
    assert not pid_alive(pid), srv.commands
    assert list(d.ctx.machine_dir.iterdir()) == []
    assert d.status() == State.NOT_CREATED


@needs_qemu_img
def test_start_reports_qemu_failing_at_once(tmp_path: Path, os_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "qemu-system-x86_64"
    fake.write_text("#!/bin/sh\necho 'qemu-system-x86_64: Could not set up host forwarding rule' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:{Path(shutil.which('qemu-img')).parent}")
    monkeypatch.setattr("machine.drivers.qemu.kvmprobe.host_arch", lambda: "x86_64")
    d = make_driver(tmp_path)
    d.create()
    with pytest.raises(DriverError, match="host forwarding rule"):
        d.start()
    assert d.status() == State.STOPPED
    assert not (d.ctx.machine_dir / machinedir.QEMU_PID).exists()


@needs_qemu_img
def test_start_repicks_ports_taken_meanwhile(tmp_path: Path, os_dir: Path) -> None:
    d = make_driver(tmp_path)
    d.create()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        d.data["ssh_port"] = taken.getsockname()[1]
        lifecycle._free_ports(d)
        assert d.data["ssh_port"] != taken.getsockname()[1]
        assert hostports.port_free(d.data["ssh_port"])


def test_vm_spec_for_windows_uses_the_saved_tcp_qmp(tmp_path: Path, os_dir: Path) -> None:
    d = make_driver(tmp_path)
    d.data.update({"boot": "kernel", "kernel": str(os_dir / "vmlinuz"), "initrd": str(os_dir / "initrd.img"),
                   "cmdline": "quiet", "ssh_port": 1, "engine_port": 2, "qmp": "tcp:127.0.0.1:3", "accel": "whpx"})
    spec = lifecycle.vm_spec(d, "qemu-system-x86_64.exe", platform="win32", arch="x86_64")
    assert spec.qmp == "tcp:127.0.0.1:3" and spec.accel == "whpx"
    assert spec.cmdline == "quiet console=ttyS0 machine.hostname=dev"


@pytest.mark.parametrize(("choice", "saved", "want"), [
    ("auto", {}, False), ("off", {}, False), ("on", {}, True),
    ("auto", {"default_restrict": True}, False),  # a machine OS machine made when auto meant "on" for it
])
def test_only_restrict_on_cuts_the_machine_os_off(tmp_path: Path, os_dir: Path, choice: str, saved: dict,
                                                  want: bool) -> None:
    """auto gives the machine OS outside networks (docker pull, UDP replies), as native Linux has."""
    d = make_driver(tmp_path, restrict=choice)
    d.data.update({"boot": "kernel", "kernel": str(os_dir / "vmlinuz"), "initrd": str(os_dir / "initrd.img"),
                   "cmdline": "quiet", "ssh_port": 1, "engine_port": 2, "accel": "tcg", **saved})
    spec = lifecycle.vm_spec(d, "qemu-system-x86_64", platform="linux", arch="x86_64")
    assert spec.restrict_network is want
    assert ("restrict=on" in " ".join(cmdline.build_args(spec))) is want


def test_pick_free_ports_are_distinct_and_bindable() -> None:
    picked = hostports.pick_free_ports(3)
    assert len(set(picked)) == 3
    assert all(hostports.port_free(p) for p in picked)
    with socket.socket() as s:
        s.bind(("127.0.0.1", picked[0]))
        s.listen(1)
        assert not hostports.port_free(picked[0])


def test_socket_path_is_short_even_for_deep_machine_dirs(tmp_path: Path) -> None:
    shallow = tmp_path / "m"
    assert socket_path(shallow) == shallow / "qmp.sock"
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "machines" / "dev"
    path = socket_path(deep)
    assert len(str(path).encode()) <= 100
    assert path == socket_path(deep)  # stable: status() finds it again
    assert socket_path(tmp_path / "a,b") != tmp_path / "a,b" / "qmp.sock"


@needs_qemu_img
def test_disk_image_gets_a_qcow2_overlay_not_a_copy(tmp_path: Path) -> None:
    base = tmp_path / "cloud.qcow2"
    process.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "2G"], check=True)
    d = make_driver(tmp_path, image=str(base), disk_size=1024)
    d.create()
    overlay = d.ctx.machine_dir / "disk.qcow2"
    info = json.loads(process.run(["qemu-img", "info", "--output=json", str(overlay)], check=True).stdout)
    assert info["backing-filename"] == str(base) and info["backing-filename-format"] == "qcow2"
    assert info["virtual-size"] == 2 << 30  # never smaller than the base image
    assert overlay.stat().st_size < 1 << 20
    assert d.data["boot"] == "disk"
    assert not (d.ctx.machine_dir / "data.qcow2").exists()
    spec = lifecycle.vm_spec(d, "qemu-system-x86_64", platform="linux", arch="x86_64")
    assert spec.root_disk == overlay and spec.kernel is None and spec.restrict_network is False
    d.remove()
    assert base.exists() and not overlay.exists()


def test_host_address_moves_every_address_the_driver_gives(running, os_dir: Path) -> None:
    d, _srv, _pid = running
    d.data.update(kernel=str(os_dir / "vmlinuz"), initrd=str(os_dir / "initrd.img"))
    d.ctx.options["host_address"] = "127.0.0.2"
    assert d.ip() == "127.0.0.2"
    assert d.engine_address(2376) == ("127.0.0.2", 40376)
    assert d.ssh_endpoint() == SSHEndpoint("127.0.0.2", 40022, "root")
    spec = lifecycle.vm_spec(d, "qemu-system-x86_64")
    assert spec.host_address == "127.0.0.2"


@pytest.mark.parametrize("raw", ["0.0.0.0", "224.0.0.1", "::1", "host.example", "127.0.0.256"])
def test_host_address_must_be_one_ipv4_address(raw: str) -> None:
    with pytest.raises(ValueError):
        ports.HostAddress(raw)
    assert ports.HostAddress(" 127.0.0.2 ") == "127.0.0.2"


def test_free_ports_are_picked_on_the_host_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert not hostports.port_free(taken, "127.0.0.2")
        picked = hostports.pick_free_ports(2, "127.0.0.2")
        assert taken not in picked and all(hostports.port_free(p, "127.0.0.2") for p in picked)


def test_udp_forward_on_a_restricted_user_network_is_refused_with_the_reason(tmp_path: Path) -> None:
    """libslirp drops every UDP datagram a restricted guest sends: the agent must report, not pretend."""
    from machine.drivers.qemu import QemuDriver

    from machine.driver import DriverContext
    from machine.errors import DriverError

    d = QemuDriver(DriverContext(name="r", machine_dir=tmp_path, options={"restrict": "on"}))
    assert d.port_forward_path() == "hypervisor"
    with pytest.raises(DriverError, match="restrict=on drops the guest's UDP replies.*--qemu-restrict off"):
        d.forward_port("udp", "127.0.0.1", 5353, 53)


def test_forward_port_through_a_real_qemu_monitor(tmp_path: Path) -> None:
    """hostfwd_add/hostfwd_remove through QMP's human-monitor-command, against a real qemu whose guest never
    runs (-S): the host port is bound by qemu, a second rule on it is refused with qemu's words, removal frees it."""
    import subprocess
    import time

    from machine.drivers.qemu.kvmprobe import find_qemu

    qemu = find_qemu()
    if not qemu:
        pytest.skip("qemu-system is not installed")
    sock = short_socket_path()
    proc = subprocess.Popen([qemu, "-nodefaults", "-display", "none", "-S", "-netdev", "user,id=n0,restrict=on",
                             "-device", "virtio-net-pci,netdev=n0", "-qmp", f"unix:{sock},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not Path(sock).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        d = QemuDriver(DriverContext(name="f", machine_dir=tmp_path, options={"restrict": "off"},
                                     data={"qmp": f"unix:{sock}"}))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        d.forward_port("tcp", "127.0.0.1", port, 8080)
        assert not hostports.port_free(port)
        with pytest.raises(DriverError, match="Could not set up host forwarding rule"):
            d.forward_port("tcp", "127.0.0.1", port, 8080)
        d.forward_port("udp", "127.0.0.1", port, 53)  # UDP and TCP are separate rules on one port
        d.unforward_port("tcp", "127.0.0.1", port)
        assert hostports.port_free(port)
        d.unforward_port("tcp", "127.0.0.1", port)  # gone already: not an error
        d.unforward_port("udp", "127.0.0.1", port)
    finally:
        proc.kill()
        proc.wait()
