"""HyperKit driver: macOS-only paths with injected platform checks, recorded bootpd leases, and a fake
`hyperkit` that runs as a real process (tests/fakes/hyperkit)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import machine.drivers.hyperkit as hk
import pytest
from machine.drivers.hyperkit import HyperKitDriver, leases

from machine.driver import DriverContext, State
from machine.errors import HostNotUsable, MachineError
from tests.fakes import install

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "hyperkit"
RECORDED = FAKES / "dhcpd_leases.recorded"


intel_mac = install.intel_mac


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return install.hyperkit(tmp_path, monkeypatch, folder="bin", os_folder="os",
                            cmdline="console=ttyS0 quiet machine.os=1")


@pytest.fixture
def driver(fake: Path, tmp_path: Path):
    mdir = tmp_path / "m" / "hk1"
    mdir.mkdir(parents=True)
    (mdir / "seed.iso").write_bytes(b"seed")
    d = HyperKitDriver(DriverContext(name="hk1", machine_dir=mdir, options={"memory": 768, "cpus": 3,
                                                                          "disk_size": 3000},
                                     seed_path=mdir / "seed.iso"))
    yield d
    d.remove()


def wait(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# -- leases ---------------------------------------------------------------------------------------


def test_recorded_leases_parse_and_normalise() -> None:
    parsed = leases.parse(RECORDED.read_text())
    assert [lease.ip for lease in parsed] == ["192.168.64.7", "192.168.64.2", "192.168.64.3", "192.168.64.4"]
    assert parsed[2].mac == "d6:07:47:f3:e7:35"  # bootpd wrote `d6:7:47...`
    assert leases.ip_for("d6:07:47:f3:e7:35", RECORDED) == "192.168.64.3"
    assert leases.ip_for("D6-07-47-F3-E7-35", RECORDED) == "192.168.64.3"
    assert leases.ip_for("a2:06:1d:00:e3:09", RECORDED) == "192.168.64.7"  # the newer of two leases
    assert leases.ip_for("00:00:00:00:00:01", RECORDED) is None
    assert leases.ip_for("a2:06:1d:00:e3:09", RECORDED.with_name("missing")) is None


@pytest.mark.parametrize("bad", ["", "1,2,3", "zz:0:0:0:0:1", "a:b:c:d:e"])
def test_normalise_mac_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        leases.normalise_mac(bad)


# -- availability: macOS-only checks, injected --------------------------------------------------------


@pytest.mark.parametrize("plat,machine,needle", [("linux", "x86_64", "only on macOS"), ("win32", "AMD64", "macOS"),
                                                 ("darwin", "arm64", "Apple silicon")])
def test_unsupported_hosts_point_to_qemu(monkeypatch, plat: str, machine: str, needle: str) -> None:
    monkeypatch.setattr(HyperKitDriver, "host_platform", plat)
    monkeypatch.setattr(HyperKitDriver, "host_machine", machine)
    verdict = HyperKitDriver.check_available({})
    assert not verdict.ok and needle in verdict.message
    assert "qemu" in verdict.hint


def test_rosetta_is_apple_silicon(fake: Path, tmp_path: Path, monkeypatch) -> None:
    intel_mac(monkeypatch, machine=None)  # platform.machine() says x86_64 under Rosetta 2 ...
    monkeypatch.setattr(hk.platform, "machine", lambda: "x86_64")
    sysctl = tmp_path / "bin" / "sysctl"
    sysctl.write_text("#!/bin/sh\n[ \"$2\" = sysctl.proc_translated ] && echo 1\n")
    sysctl.chmod(0o755)
    verdict = HyperKitDriver.check_available({})
    assert not verdict.ok and "Apple silicon" in verdict.message  # ... but sysctl.proc_translated tells


def test_not_root_and_not_setuid(fake: Path, tmp_path: Path, monkeypatch) -> None:
    intel_mac(monkeypatch, root=False)
    binary = tmp_path / "hyperkit-copy"
    binary.write_bytes((FAKES / "hyperkit").read_bytes())
    binary.chmod(0o755)
    verdict = HyperKitDriver.check_available({"binary": str(binary)})
    assert not verdict.ok
    assert f"sudo chown root:wheel {binary} && sudo chmod u+s {binary}" in verdict.hint
    if os.geteuid() == 0:  # as root we can make it setuid root, which is enough
        binary.chmod(0o755 | stat.S_ISUID)
        assert HyperKitDriver.check_available({"binary": str(binary)}).ok


def test_available_on_intel_mac_as_root(fake: Path) -> None:
    verdict = HyperKitDriver.check_available({})
    assert verdict.ok and "deprecated" in verdict.message


def test_description_says_deprecated() -> None:
    assert "DEPRECATED" in HyperKitDriver.description and "qemu" in HyperKitDriver.description


# -- the driver against the fake process ----------------------------------------------------------------


def test_command_line(driver: HyperKitDriver) -> None:
    driver.create()
    uuid = driver.data["uuid"]
    d = driver.ctx.machine_dir
    argv = driver.command("hyperkit", uuid)
    os_dir = Path(os.environ["MACHINE_OS_DIR"])
    assert argv == [
        "hyperkit", "-A", "-u", "-F", str(d / "hyperkit.pid"), "-c", "3", "-m", "768M",
        "-s", "0:0,hostbridge", "-s", "31,lpc", "-s", "1:0,virtio-net", "-s", f"2:0,virtio-blk,{d / 'data.img'}",
        "-s", f"3:0,ahci-cd,{os_dir / 'machine-os.iso'}", "-s", f"4:0,ahci-cd,{d / 'seed.iso'}", "-U", uuid,
        "-l", f"com1,autopty={d / 'tty'},log={d / 'console.log'}",
        "-f", f"kexec,{os_dir / 'vmlinuz'},{os_dir / 'initrd.img'},console=ttyS0 quiet machine.os=1"]


def test_paths_with_commas_are_refused(fake: Path, tmp_path: Path) -> None:
    mdir = tmp_path / "a,b"
    mdir.mkdir()
    d = HyperKitDriver(DriverContext(name="c", machine_dir=mdir, options={}))
    with pytest.raises(MachineError) as e:
        d.create()
    assert "comma" in e.value.message
    assert d.status() == State.NOT_CREATED


def test_create_makes_sparse_disk_and_records_mac(driver: HyperKitDriver) -> None:
    assert driver.status() == State.NOT_CREATED
    driver.create()
    disk = driver.ctx.machine_dir / "data.img"
    assert disk.stat().st_size == 3000 * 1024 * 1024
    assert disk.stat().st_blocks * 512 < 1024 * 1024  # sparse
    state = json.loads((driver.ctx.machine_dir / "hyperkit.json").read_text())
    assert state["mac"] == driver.data["mac"] and state["uuid"] == driver.data["uuid"]
    out = subprocess.run(["hyperkit", *driver.command("hyperkit", driver.data["uuid"], print_mac=True)[1:]],
                         capture_output=True, text=True)
    assert out.stdout.strip() == f"MAC: {driver.data['mac']}"  # stable for the UUID
    assert driver.status() == State.STOPPED
    driver.create()  # idempotent: same VM
    assert json.loads((driver.ctx.machine_dir / "hyperkit.json").read_text())["uuid"] == state["uuid"]


def test_vmnet_refused_when_not_root(driver: HyperKitDriver, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_HYPERKIT_FAIL", "vmnet")
    with pytest.raises(HostNotUsable) as e:
        driver.create()
    assert "chmod u+s" in e.value.hint
    assert driver.status() == State.NOT_CREATED


def test_running_process_pidfile_ip_and_ssh(driver: HyperKitDriver, fake: Path) -> None:
    driver.create()
    assert driver.ip() is None and driver.ssh_endpoint() is None
    driver.start()
    pidfile = driver.ctx.machine_dir / "hyperkit.pid"
    assert wait(pidfile.exists)
    pid = int(pidfile.read_text())
    os.kill(pid, 0)  # a real process
    assert driver.status() == State.RUNNING
    assert wait(lambda: driver.ip() is not None)
    assert driver.ip() == "192.168.64.2"
    ep = driver.ssh_endpoint()
    assert (ep.host, ep.port, ep.user) == ("192.168.64.2", 22, "root")
    assert (driver.ctx.machine_dir / "console.log").exists()
    assert "hw_address=1," in fake.read_text()


def test_sigterm_stops_gracefully_sigkill_leaves_stale_pidfile(driver: HyperKitDriver) -> None:
    driver.create()
    driver.start()
    pidfile = driver.ctx.machine_dir / "hyperkit.pid"
    assert wait(pidfile.exists)
    driver.stop()
    assert wait(lambda: driver.status() == State.STOPPED)
    assert not pidfile.exists()  # hyperkit removes it on a clean exit
    driver.start()
    assert wait(pidfile.exists) and driver.status() == State.RUNNING
    driver.stop(force=True)
    assert wait(lambda: driver.status() == State.STOPPED)
    assert pidfile.exists()  # SIGKILL: the pidfile stays, the driver is not fooled by it


def test_stale_pidfile_with_reused_pid_is_not_ours(driver: HyperKitDriver) -> None:
    driver.create()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (driver.ctx.machine_dir / "hyperkit.pid").write_text(str(other.pid))
        assert driver.status() == State.STOPPED
        driver.stop(force=True)  # must not signal a process that is not this VM's hyperkit
        driver.remove()
        assert other.poll() is None
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()


def test_remove_kills_and_deletes(driver: HyperKitDriver) -> None:
    driver.create()
    driver.start()
    assert wait((driver.ctx.machine_dir / "hyperkit.pid").exists) and driver.status() == State.RUNNING
    pid = int((driver.ctx.machine_dir / "hyperkit.pid").read_text())
    driver.remove()
    assert driver.status() == State.NOT_CREATED
    for name in ("data.img", "hyperkit.json", "hyperkit.pid"):
        assert not (driver.ctx.machine_dir / name).exists()

    def gone() -> bool:
        out = subprocess.run(["ps", "-ww", "-p", str(pid), "-o", "stat="], capture_output=True, text=True).stdout
        return out.strip() in ("", "Z", "Z+", "Zs")
    assert wait(gone)


def test_fake_parses_like_hyperkit(fake: Path) -> None:
    bad = subprocess.run(["hyperkit", "-Z", "-f", "kexec,a,b,"], capture_output=True, text=True)
    assert bad.returncode == 1 and "illegal option -- Z" in bad.stderr and "Usage: hyperkit" in bad.stderr
    bad = subprocess.run(["hyperkit", "-s", "2:0,virtio-blk,/nonexistent.img", "-f", "kexec,a,b,"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Could not open backing file" in bad.stderr


def test_shared_folders_are_virtio_9p_devices_the_fake_accepts(fake: Path, tmp_path: Path) -> None:
    src, data = tmp_path / "src", tmp_path / "data"
    src.mkdir()
    data.mkdir()
    mdir = tmp_path / "m" / "hk2"
    mdir.mkdir(parents=True)
    (mdir / "seed.iso").write_bytes(b"seed")
    d = HyperKitDriver(DriverContext(name="hk2", machine_dir=mdir, options={"memory": 768, "cpus": 1,
                                                                          "disk_size": 3000},
                                     seed_path=mdir / "seed.iso",
                                     shares=[{"tag": "msh0", "host": str(src), "guest": "/src", "ro": False},
                                             {"tag": "msh1", "host": str(data), "guest": "/data", "ro": True}]))
    try:
        d.create()
        argv = d.command("hyperkit", d.data["uuid"])
        i = argv.index("-U")
        assert argv[i - 4:i] == ["-s", f"5:0,virtio-9p,path={src},tag=msh0",
                                 "-s", f"6:0,virtio-9p,path={data},tag=msh1"]
        d.start()
        assert wait(lambda: d.status() == State.RUNNING)
        assert wait(lambda: f"virtio-9p: initialising path={data},tag=msh1" in (mdir / "hyperkit.log").read_text())
    finally:
        d.remove()
    bad = subprocess.run(["hyperkit", "-s", f"5:0,virtio-9p,path={src},tag=msh0,ro", "-f", "kexec,a,b,"],
                         capture_output=True, text=True)
    assert bad.returncode == 4 and "invalid option: ro" in bad.stderr
    (tmp_path / "a,b").mkdir()
    d.ctx.shares = [{"tag": "msh0", "host": str(tmp_path / "a,b"), "guest": "/x", "ro": False}]
    with pytest.raises(MachineError, match="comma"):
        d.command("hyperkit", "u")
