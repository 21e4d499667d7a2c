"""VirtualBox driver against the recorded-output VBoxManage fake (tests/fakes/vboxmanage)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from machine.drivers.virtualbox import VirtualBoxDriver, network, vbm

from machine.driver import DriverContext, State
from machine.errors import DriverError, HostNotUsable, MachineError, UsageError
from tests.fakes import install

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "vboxmanage"
FIX = FAKES / "fixtures"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return install.vboxmanage(tmp_path, monkeypatch, networks_conf=tmp_path / "networks.conf", folder="bin",
                              os_folder="os")


def state(home: Path) -> dict:
    return json.loads((home / "fake-vbox-state.json").read_text())


def make(tmp_path: Path, name: str = "vb1", **options) -> VirtualBoxDriver:
    mdir = tmp_path / "machines" / name
    mdir.mkdir(parents=True)
    seed = mdir / "seed.iso"
    seed.write_bytes(b"seed")
    return VirtualBoxDriver(DriverContext(name=name, machine_dir=mdir, options=options, seed_path=seed))


def running(d: VirtualBoxDriver) -> VirtualBoxDriver:
    d.create()
    d.start()
    return d


# -- parsing recorded output ---------------------------------------------------------------------


def test_machinereadable_parses_recorded_70_layout() -> None:
    text = (FIX / "showvminfo-machinereadable.txt").read_text()
    info = vbm.parse_machinereadable(text.replace("{state}", "poweroff").replace("{name}", "x"))
    assert info["VMState"] == "poweroff"
    assert info["name"] == "x"
    assert "Encryption:     disabled" not in info  # the 7.0 stray line is skipped, not mis-parsed
    assert info["BIOS NVRAM File"].endswith("x.nvram")


def test_parse_blocks_recorded_hostonlyifs() -> None:
    text = "".join((FIX / "hostonlyif.txt").read_text().format(
        name=f"vboxnet{i}", guid="g", dhcp="Disabled", ip=f"192.168.5{6 + i}.1", mask="255.255.255.0", idx=i)
        for i in range(2))
    blocks = vbm.parse_blocks(text)
    assert [b["Name"] for b in blocks] == ["vboxnet0", "vboxnet1"]
    assert blocks[1]["IPAddress"] == "192.168.57.1"
    assert blocks[0]["VBoxNetworkName"] == "HostInterfaceNetworking-vboxnet0"


def test_parse_blocks_dhcpservers_and_hostonlynets() -> None:
    dhcp = "".join((FIX / "dhcpserver.txt").read_text().format(
        network=f"HostInterfaceNetworking-vboxnet{i}", server="192.168.56.100", lower="192.168.56.101",
        upper="192.168.56.254", mask="255.255.255.0", enabled=("Yes", "No")[i]) for i in range(2))
    blocks = vbm.parse_blocks(dhcp, start="NetworkName")
    assert [(b["NetworkName"], b["Enabled"]) for b in blocks] == [
        ("HostInterfaceNetworking-vboxnet0", "Yes"), ("HostInterfaceNetworking-vboxnet1", "No")]
    assert "1/legacy" not in blocks[0]  # nested option lines are not fields
    nets = "".join((FIX / "hostonlynet.txt").read_text().format(
        name=f"n{i}", guid=f"g{i}", mask="255.255.255.0", lower=f"192.168.5{6 + i}.101", upper="x") for i in range(2))
    blocks = vbm.parse_blocks(nets)  # a blank line inside each record must not split it
    assert [(b["Name"], b["LowerIP"]) for b in blocks] == [("n0", "192.168.56.101"), ("n1", "192.168.57.101")]


def test_version_after_vboxdrv_warning() -> None:
    assert vbm.parse_version((FIX / "version-vboxdrv-warning.txt").read_text()) == (7, 0, 14)
    assert not vbm.version_ok((6, 0, 24)) and vbm.version_ok((6, 1, 0))


@pytest.mark.parametrize("fixture,kind,needle", [
    ("error-vtx.txt", HostNotUsable, "BIOS"),
    ("error-vtx-bios.txt", HostNotUsable, "BIOS"),
    ("error-hyperv.txt", HostNotUsable, "Hyper-V"),
    ("error-whv.txt", HostNotUsable, "Hyper-V"),
    ("error-hostonly-range.txt", DriverError, "networks.conf"),
    ("error-not-found.txt", vbm.VBoxNotFound, "machine rm"),
])
def test_recorded_errors_become_typed_errors_with_hints(fixture: str, kind: type, needle: str) -> None:
    err = vbm.classify((FIX / fixture).read_text().replace("{name}", "vb1"), "startvm")
    assert type(err) is kind
    assert needle in err.hint
    assert "Details:" not in err.message


def test_lease_file_mac_normalised(tmp_path: Path) -> None:
    leases = tmp_path / "l.leases"
    leases.write_text('<?xml version="1.0"?>\n<Leases version="1.0">\n'
                      '  <Lease mac="08:00:27:0a:0b:0c" network="0.0.0.0" state="acked">\n'
                      '    <Address value="192.168.56.101"/>\n    <Time issued="1" expiration="1200"/>\n  </Lease>\n'
                      '</Leases>\n')
    assert network.lease_ip(leases, "0800270A0B0C") == "192.168.56.101"
    assert network.lease_ip(leases, "08:00:27:a:b:c") == "192.168.56.101"
    assert network.lease_ip(leases, "080027000000") is None
    assert network.lease_ip(tmp_path / "missing", "0800270A0B0C") is None


# -- host-only ranges and finding VBoxManage -------------------------------------------------------


def test_hostonly_ranges(tmp_path: Path) -> None:
    conf = tmp_path / "networks.conf"
    assert network.host_interface("192.168.56.1/24", (7, 0, 14), "linux", conf).ip.exploded == "192.168.56.1"
    with pytest.raises(UsageError) as e:
        network.host_interface("192.168.99.1/24", (7, 0, 14), "linux", conf)
    assert "networks.conf" in e.value.hint
    network.host_interface("192.168.99.1/24", (6, 1, 26), "linux", conf)  # before 6.1.28: anything goes
    network.host_interface("192.168.99.1/24", (7, 0, 14), "win32", conf)  # no restriction on Windows
    conf.write_text("* 10.0.0.0/8 192.168.0.0/16\n")
    network.host_interface("192.168.99.1/24", (7, 0, 14), "darwin", conf)
    with pytest.raises(UsageError):
        network.host_interface("192.168.99.0/24", (7, 0, 14), "linux", conf)  # the network address itself


def test_windows_install_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    inst = tmp_path / "Oracle VirtualBox"
    inst.mkdir()
    (inst / "VBoxManage.exe").write_text("")
    env = {"VBOX_MSI_INSTALL_PATH": str(inst)}
    assert vbm.find(env, "win32") == str(inst / "VBoxManage.exe")
    assert vbm.find(env, "linux") is None  # the Windows folders are not searched elsewhere
    assert vbm.windows_dirs({}, "win32")[-1] == r"C:\Program Files\Oracle\VirtualBox"


def test_vbox_home_per_platform(tmp_path: Path) -> None:
    assert network.vbox_home({"HOME": str(tmp_path)}, "darwin") == tmp_path / "Library" / "VirtualBox"
    assert network.vbox_home({"USERPROFILE": str(tmp_path)}, "win32") == tmp_path / ".VirtualBox"
    assert network.vbox_home({"HOME": str(tmp_path)}, "linux") == tmp_path / ".config" / "VirtualBox"
    assert network.vbox_home({"VBOX_USER_HOME": "/x"}, "linux") == Path("/x")


# -- the driver against the fake -----------------------------------------------------------------------


def test_create_builds_the_vm_as_specified(fake: Path, tmp_path: Path) -> None:
    d = make(tmp_path, cpus=3, memory=1536, disk_size=5000)
    d.create()
    info = d._info()
    assert info["VMState"] == "poweroff"
    assert (info["cpus"], info["memory"]) == ("3", "1536")
    assert info["ostype"] == "Other Linux (64-bit)"
    assert (info["acpi"], info["paravirtprovider"], info["boot1"], info["boot2"]) == ("on", "default", "dvd", "disk")
    assert (info["nic1"], info["nictype1"]) == ("nat", "virtio")
    fwd = vbm.forwards(info)
    assert fwd["ssh"] == ("127.0.0.1", d.data["ssh_port"], 22)
    assert fwd["engine"] == ("127.0.0.1", d.data["engine_host_port"], 2376)
    assert (info["nic2"], info["hostonlyadapter2"], info["nictype2"]) == ("hostonly", "vboxnet0", "virtio")
    assert info["uart1"] == "0x03f8,4"
    assert info["uartmode1"] == f"file,{d.ctx.machine_dir / 'console.log'}"
    assert info['IDE-0-0'].endswith("machine-os.iso")
    assert info['IDE-1-0'] == str(d.ctx.machine_dir / "disk.vdi")
    assert info['IDE-0-1'] == str(d.ctx.seed_path)
    assert (d.ctx.machine_dir / "disk.vdi").is_file()
    assert info["CfgFile"].startswith(str(d.ctx.machine_dir))  # --basefolder is the machine dir
    st = state(fake)
    assert st["hostonlyifs"]["vboxnet0"]["ip"] == "192.168.56.1"
    assert st["dhcpservers"]["HostInterfaceNetworking-vboxnet0"]["enabled"] == "Yes"


def test_second_machine_reuses_hostonly_interface(fake: Path, tmp_path: Path) -> None:
    make(tmp_path, "a").create()
    make(tmp_path, "b").create()
    assert list(state(fake)["hostonlyifs"]) == ["vboxnet0"]


def test_addresses_only_while_running(fake: Path, tmp_path: Path) -> None:
    d = make(tmp_path)
    d.create()
    assert d.ip() is None and d.ssh_endpoint() is None and d.url() is None
    running(d)
    assert d.ip() == "192.168.56.101"  # from VBoxNetDHCP's leases file: no guest additions in the OS
    assert d.engine_address(2376) == ("192.168.56.101", 2376)
    ep = d.ssh_endpoint()
    assert (ep.host, ep.port, ep.user) == ("127.0.0.1", d.data["ssh_port"], "root")
    assert d.console_log() == d.ctx.machine_dir / "console.log"


def test_virtualbox7_on_macos_uses_hostonlynet(fake: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(VirtualBoxDriver, "host_platform", "darwin")
    monkeypatch.setenv("HOME", str(tmp_path))  # VBOX_USER_HOME still wins for the leases
    d = make(tmp_path)
    d.create()
    info = d._info()
    assert info["nic2"] == "hostonlynetwork" and info["hostonly-network2"] == "machine-192.168.56.0"
    assert state(fake)["hostonlyifs"] == {}
    net = state(fake)["hostonlynets"]["machine-192.168.56.0"]
    assert (net["mask"], net["lower"], net["upper"]) == ("255.255.255.0", "192.168.56.101", "192.168.56.254")
    make(tmp_path, "second").create()  # reuses the network
    assert list(state(fake)["hostonlynets"]) == ["machine-192.168.56.0"]
    d.start()
    assert d.ip() == "192.168.56.101"


def test_no_hostonly_uses_forwards(fake: Path, tmp_path: Path) -> None:
    d = running(make(tmp_path, no_hostonly=True))
    assert d.ip() == "127.0.0.1"
    assert d.engine_address(2376) == ("127.0.0.1", d.data["engine_host_port"])
    assert state(fake)["hostonlyifs"] == {}


def test_acpi_stop_is_asynchronous_and_kill_is_not(fake: Path, tmp_path: Path, monkeypatch) -> None:
    d = running(make(tmp_path))
    # 2 s: long enough for the next VBoxManage call to come before it on a loaded host (0.5 s was not, at load 9)
    monkeypatch.setenv("FAKE_VBOX_ACPI_DELAY", "2")
    d.stop()
    pressed = time.monotonic()  # the fake's button press came before this
    assert d.status() == State.RUNNING  # the guest takes its time
    time.sleep(max(0.0, pressed + 2.1 - time.monotonic()))
    assert d.status() == State.STOPPED
    d.start()
    monkeypatch.setenv("FAKE_VBOX_FAIL", "no-acpi")
    d.stop()
    time.sleep(2.1)
    assert d.status() == State.RUNNING  # a guest that ignores ACPI ...
    d.stop(force=True)
    assert d.status() == State.STOPPED  # ... is powered off at once


@pytest.mark.parametrize("fail,needle", [("vtx", "VT-x"), ("vtx-exit0", "VT-x"), ("hyperv", "Hyper-V"),
                                         ("whv", "Hyper-V")])
def test_start_failures_are_clear(fake: Path, tmp_path: Path, monkeypatch, fail: str, needle: str) -> None:
    d = make(tmp_path)
    d.create()
    monkeypatch.setenv("FAKE_VBOX_FAIL", fail)
    with pytest.raises(HostNotUsable) as e:
        d.start()
    assert needle in e.value.message + e.value.hint
    assert d.status() == State.STOPPED


def test_transient_not_ready_is_retried(fake: Path, tmp_path: Path, monkeypatch) -> None:
    d = make(tmp_path)
    monkeypatch.setenv("FAKE_VBOX_FAIL", "notready:3")
    d.create()
    assert d.status() == State.STOPPED
    assert state(fake)["calls"] > 3


def test_start_right_after_kill_waits_for_the_session_lock(fake: Path, tmp_path: Path, monkeypatch) -> None:
    d = running(make(tmp_path))
    # the next 2 commands that need the session are refused (a time window failed at load 12: the fake's own
    # start took longer than it), then it is released: the raw call and the driver's first try see the lock
    monkeypatch.setenv("FAKE_VBOX_UNLOCK_CALLS", "2")
    d.stop(force=True)
    raw = subprocess.run(["VBoxManage", "startvm", d.data["uuid"], "--type", "headless"], capture_output=True,
                         text=True, env={**os.environ, "LC_ALL": "C"})
    assert raw.returncode == 1 and "already locked" in raw.stderr  # VBoxSVC still releases the session ...
    calls = state(fake)["calls"]
    d.start()  # ... which the driver retries through
    assert d.status() == State.RUNNING
    assert state(fake)["calls"] - calls >= 3  # refused once more, retried, started, asked


def test_persistent_not_ready_fails(fake: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_VBOX_FAIL", "notready:100")
    runner = vbm.VBoxManage("VBoxManage", sleep=lambda s: None)
    with pytest.raises(DriverError) as e:
        runner.run("list", "vms")
    assert "not ready" in e.value.message
    assert state(fake)["calls"] == vbm.RETRIES + 1


def test_check_available(fake: Path, tmp_path: Path, monkeypatch) -> None:
    assert VirtualBoxDriver.check_available({}).ok
    bad = VirtualBoxDriver.check_available({"hostonly_cidr": "10.9.0.1/24"})
    assert not bad.ok and "networks.conf" in bad.hint
    monkeypatch.setenv("FAKE_VBOX_FAIL", "vboxdrv")
    drv = VirtualBoxDriver.check_available({})
    assert not drv.ok and "vboxconfig" in drv.hint


def test_remove_after_half_made_create(fake: Path, tmp_path: Path) -> None:
    d = make(tmp_path)
    d.ctx.seed_path = tmp_path / "missing-seed.iso"  # the last storageattach fails
    with pytest.raises(MachineError):
        d.create()
    assert (d.ctx.machine_dir / "disk.vdi").exists()
    d.remove()  # what the orchestrator's rollback does
    assert d.status() == State.NOT_CREATED
    assert not (d.ctx.machine_dir / "disk.vdi").exists()
    assert state(fake)["vms"] == {} and state(fake)["media"] == {}


def test_remove_keeps_the_iso_and_deletes_the_disk(fake: Path, tmp_path: Path) -> None:
    d = running(make(tmp_path))
    iso = Path(os.environ["MACHINE_OS_DIR"]) / "machine-os.iso"
    d.remove()
    assert iso.exists() and d.ctx.seed_path.exists()
    assert not (d.ctx.machine_dir / "disk.vdi").exists()
    assert not list(d.ctx.machine_dir.rglob("*.vbox"))


def test_vm_removed_outside_is_not_created(fake: Path, tmp_path: Path) -> None:
    d = make(tmp_path)
    d.create()
    subprocess.run(["VBoxManage", "unregistervm", d.data["uuid"], "--delete"], check=True,
                   env={**os.environ, "LC_ALL": "C"}, capture_output=True)
    assert d.status() == State.NOT_CREATED
    d.remove()


def test_missing_iso_is_a_clear_error(fake: Path, tmp_path: Path) -> None:
    d = make(tmp_path, iso=str(tmp_path / "nope.iso"))
    with pytest.raises(MachineError) as e:
        d.create()
    assert "--virtualbox-iso" in e.value.hint
    assert not (fake / "fake-vbox-state.json").exists() or state(fake)["vms"] == {}


# -- the fake itself is strict ---------------------------------------------------------------------------


def fake_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["VBoxManage", *args], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})


def test_fake_rejects_unknown_commands_and_options(fake: Path) -> None:
    bad = fake_run("frobnicate")
    assert bad.returncode == 2 and "Invalid command 'frobnicate'" in bad.stderr
    fake_run("createvm", "--name", "x", "--register", "--basefolder", str(fake / "vms"))
    bad = fake_run("modifyvm", "x", "--cpus", "2", "--turbo", "on")
    assert bad.returncode == 2 and "Unknown option: --turbo" in bad.stderr
    bad = fake_run("modifyvm", "x", "--nictype1", "virtio")
    assert bad.returncode == 1  # NIC 1 must be enabled first


def test_fake_refuses_changes_while_running(fake: Path) -> None:
    fake_run("createvm", "--name", "x", "--register", "--basefolder", str(fake / "vms"))
    assert fake_run("startvm", "x", "--type", "headless").returncode == 0
    locked = fake_run("modifyvm", "x", "--cpus", "2")
    assert locked.returncode == 1 and "already locked" in locked.stderr
    assert "while it is locked" in fake_run("unregistervm", "x", "--delete").stderr


def test_shared_folders_follow_the_machine_shares(fake: Path, tmp_path: Path) -> None:
    src, data, other = tmp_path / "src", tmp_path / "data", tmp_path / "other"
    for d in (src, data, other):
        d.mkdir()
    d = make(tmp_path)
    d.ctx.shares = [{"tag": "msh0", "host": str(src), "guest": "/src", "ro": False},
                    {"tag": "msh1", "host": str(data), "guest": "/data", "ro": True}]
    d.create()
    info = d._info()
    assert [(info[f"SharedFolderNameMachineMapping{n}"], info[f"SharedFolderPathMachineMapping{n}"]) for n in (1, 2)] \
        == [("msh0", str(src)), ("msh1", str(data))]
    folders = state(fake)["vms"][d.data["uuid"]]["sharedfolders"]
    assert folders["msh1"]["readonly"] is True and folders["msh0"]["readonly"] is False
    # `machine set` changed the shares: the next start removes and adds folders before booting
    d.ctx.shares = [{"tag": "msh0", "host": str(other), "guest": "/o", "ro": False}]
    d.start()
    info = d._info()
    assert info["SharedFolderNameMachineMapping1"] == "msh0"
    assert info["SharedFolderPathMachineMapping1"] == str(other)
    assert "SharedFolderNameMachineMapping2" not in info
    d.stop(force=True)
    d.remove()


def test_fake_sharedfolder_refuses_like_vboxmanage(fake: Path, tmp_path: Path) -> None:
    d = make(tmp_path)
    d.create()
    uuid = d.data["uuid"]
    env = {**os.environ, "LC_ALL": "C"}
    run = lambda *a: subprocess.run(["VBoxManage", *a], capture_output=True, text=True, env=env)  # noqa: E731
    res = run("sharedfolder", "add", uuid, "--name=x", f"--hostpath={tmp_path / 'missing'}")
    assert res.returncode == 1 and "does not exist on the host" in res.stderr
    assert run("sharedfolder", "add", uuid, "--name=x", f"--hostpath={tmp_path}").returncode == 0
    res = run("sharedfolder", "add", uuid, "--name=x", f"--hostpath={tmp_path}")
    assert res.returncode == 1 and "Shared folder named 'x' already exists" in res.stderr
    res = run("sharedfolder", "add", uuid, "--name=y", f"--hostpath={tmp_path}", "--bogus")
    assert res.returncode == 2 and "Unknown option: --bogus" in res.stderr
    assert run("sharedfolder", "remove", uuid, "--name=x").returncode == 0
    res = run("sharedfolder", "remove", uuid, "--name=x")
    assert res.returncode == 1 and "Could not find a shared folder named 'x'" in res.stderr
    d.remove()


# -- published ports: NAT rules added and removed while the VM runs (the machine's agent calls these) ----------


def test_forward_port_adds_and_removes_natpf_rules(fake: Path, tmp_path: Path) -> None:
    d = running(make(tmp_path))
    assert d.port_forward_path() == "hypervisor"
    d.forward_port("tcp", "127.0.0.1", 8080, 8080)
    d.forward_port("udp", "127.0.0.1", 5353, 5353)
    rules = state(fake)["vms"][d.data["uuid"]]["nics"]["1"]["natpf"]
    assert "docker-tcp-8080,tcp,127.0.0.1,8080,,8080" in rules
    assert "docker-udp-5353,udp,127.0.0.1,5353,,5353" in rules
    info = d._info()
    assert vbm.forwards(info)["docker-tcp-8080"] == ("127.0.0.1", 8080, 8080)
    # the same host port again: VirtualBox refuses it (recorded INATEngine error), and the driver says so
    with pytest.raises(DriverError, match="already exists"):
        d.forward_port("tcp", "127.0.0.1", 8080, 8080)
    d.unforward_port("tcp", "127.0.0.1", 8080)
    rules = state(fake)["vms"][d.data["uuid"]]["nics"]["1"]["natpf"]
    assert not any(r.startswith("docker-tcp-8080,") for r in rules)
    assert any(r.startswith("ssh,") for r in rules)  # the machine's own forwards stay
    d.unforward_port("tcp", "127.0.0.1", 8080)  # gone already: not an error


def test_fake_refuses_natpf_syntax_the_real_vboxmanage_refuses(fake: Path, tmp_path: Path) -> None:
    d = running(make(tmp_path))
    res = subprocess.run(["VBoxManage", "controlvm", d.data["uuid"], "natpf1", "x,sctp,,1,,2"], capture_output=True,
                         text=True, env={**os.environ, "LC_ALL": "C"})
    assert res.returncode == 2 and "Invalid NAT rule" in res.stderr
    d.stop(force=True)
    time.sleep(0.3)
    with pytest.raises(MachineError, match="not currently running"):
        d.forward_port("tcp", "127.0.0.1", 8080, 8080)


# -- saved state (machine suspend) ----------------------------------------------------------------


def test_savestate_saves_and_startvm_resumes(fake: Path, tmp_path: Path) -> None:
    d = running(make(tmp_path))
    assert d.features.saved_state and d.saved_state_blocker() == ""
    d.save_state()
    assert d.status() == State.SAVED and d.finish_save()
    assert state(fake)["vms"][d.data["uuid"]]["state"] == "saved"
    assert d.ssh_endpoint() is None and d.ip() is None  # nothing runs
    time.sleep(0.25)  # VBoxSVC releases the session lock
    d.start()
    assert d.status() == State.RUNNING
    d.discard_saved_state()  # after a resume there is nothing to discard: no call that would fail
    assert d.status() == State.RUNNING


def test_discardstate_makes_a_saved_vm_powered_off(fake: Path, tmp_path: Path) -> None:
    d = running(make(tmp_path))
    d.save_state()
    d.discard_saved_state()
    assert d.status() == State.STOPPED
    d.discard_saved_state()  # none left: no-op
    assert d.status() == State.STOPPED


def test_fake_savestate_and_discardstate_refuse_like_vboxmanage(fake: Path) -> None:
    fake_run("createvm", "--name", "x", "--register", "--basefolder", str(fake / "vms"))
    off = fake_run("controlvm", "x", "savestate")
    assert off.returncode == 1 and "is not currently running" in off.stderr
    bad = fake_run("discardstate", "x")
    assert bad.returncode == 1 and "not in the Saved or Aborted-Saved state (machine state: PoweredOff)" in bad.stderr
    assert fake_run("discardstate").returncode == 2
    assert fake_run("startvm", "x", "--type", "headless").returncode == 0
    saved = fake_run("controlvm", "x", "savestate")
    assert saved.returncode == 0 and saved.stderr.endswith("100%\n")
    assert 'VMState="saved"' in fake_run("showvminfo", "x", "--machinereadable").stdout
