"""The hyperv driver against the fake WinRM server with real pywinrm: create, start, status, ip,
stop, kill, remove; pre-checks; error records; the local PowerShell path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes" / "winrm"))

from hv_model import FakeHyperV  # noqa: E402
from hv_pytest import PASSWORD, context, fake_host, fake_iso, options_for  # noqa: E402
from machine.drivers.hyperv import HypervDriver, choose_switch, first_ipv4  # noqa: E402

from machine.driver import State, option_values  # noqa: E402
from machine.errors import DriverError, HostNotUsable, NotFound, UsageError  # noqa: E402


@pytest.fixture
def host(tmp_path: Path):
    with fake_host(tmp_path) as srv:
        yield srv


def state(srv) -> dict:
    return srv.state.host.load()


def set_host(srv, **facts) -> None:
    srv.state.host.update(lambda s: s["host"].update(facts))


def make(srv, tmp_path: Path, name: str = "hv1", **opts) -> HypervDriver:
    iso = fake_iso(tmp_path)
    return HypervDriver(context(tmp_path, options_for(srv, tmp_path, iso=str(iso), **opts), name=name))


def test_full_lifecycle(host, tmp_path: Path) -> None:
    d = make(host, tmp_path, memory=1024, cpus=3, disk_size=30 * 1024, vlan_id=12)
    assert d.status() == State.NOT_CREATED
    d.create()
    vm = state(host)["vms"]["hv1"]
    assert vm["Generation"] == 1 and vm["State"] == 3
    assert vm["MemoryStartup"] == 1024 << 20 and vm["DynamicMemoryEnabled"] is False and vm["ProcessorCount"] == 3
    vm_dir = d.data["vm_dir"]
    assert vm_dir == "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V\\machine\\hv1"
    assert [(x["ControllerNumber"], x["ControllerLocation"], x["Path"]) for x in vm["DvdDrives"]] == [
        (1, 0, vm_dir + "\\boot.iso"), (1, 1, vm_dir + "\\seed.iso")]
    assert vm["HardDrives"][0]["Path"] == vm_dir + "\\disk.vhdx"
    assert state(host)["vhds"][vm_dir + "\\disk.vhdx"] == {"Size": 30 << 30, "VhdType": "Dynamic", "VhdFormat": "VHDX"}
    assert vm["ComPort1"] == "\\\\.\\pipe\\machine-hv1"
    assert vm["NetworkAdapters"][0] == {"SwitchName": "External LAN", "VlanId": 12, "IPAddresses": []}
    files = host.state.host.local(vm_dir)
    assert (files / "seed.iso").read_bytes() == d.ctx.seed_path.read_bytes()
    assert (files / "boot.iso").read_bytes() == (tmp_path / "machine-os.iso").read_bytes()
    assert (files / "disk.vhdx").read_bytes().startswith(b"vhdxfile")
    assert d.status() == State.STOPPED and d.ip() is None and d.ssh_endpoint() is None

    d.start()
    assert d.status() == State.RUNNING
    assert d.ip() is None  # KVP has not reported yet
    assert d.ip() == "127.0.0.1"
    ep = d.ssh_endpoint()
    assert ep and (ep.host, ep.port, ep.user) == ("127.0.0.1", 22, "root")
    assert d.url() == "tcp://127.0.0.1:2376"
    d.start()  # no-op when running (a second Start-VM would be an error on Hyper-V)

    d.stop()
    assert d.status() == State.STOPPED and state(host)["vms"]["hv1"]["last_stop"] == "shutdown"
    d.stop()  # no-op when stopped
    d.start()
    d.stop(force=True)
    assert d.status() == State.STOPPED and state(host)["vms"]["hv1"]["last_stop"] == "turnoff"

    d.create()  # idempotent: the VM exists
    assert len(state(host)["vms"]) == 1
    d.start()
    d.remove()
    assert d.status() == State.NOT_CREATED
    assert state(host)["vms"] == {} and state(host)["vhds"] == {}
    assert not files.exists()
    # the boot ISO stays in the host's digest cache for the next machine
    assert list(host.state.host.local(d.data["iso_cache"]).glob("sha256-*.iso"))
    d.remove()  # no-op when gone


def test_remove_spares_a_foreign_vm_with_the_same_name(host, tmp_path: Path) -> None:
    d = make(host, tmp_path)
    d.create()
    host.state.host.update(lambda s: s["vms"]["hv1"].update(Path="D:\\Someone\\else"))
    assert d.status() == State.NOT_CREATED  # not ours
    d.remove()
    assert "hv1" in state(host)["vms"]
    assert not host.state.host.local(d.data["vm_dir"]).exists()  # our folder is gone


def test_create_refuses_an_existing_foreign_vm(host, tmp_path: Path) -> None:
    make(host, tmp_path / "a").create()
    host.state.host.update(lambda s: s["vms"]["hv1"].update(Path="D:\\Someone\\else"))
    other = make(host, tmp_path / "b")
    with pytest.raises(DriverError, match="already exists"):
        other.create()


def test_reopened_driver_works_from_saved_data(host, tmp_path: Path) -> None:
    d = make(host, tmp_path)
    d.create()
    again = HypervDriver(context(tmp_path, dict(d.ctx.options)))
    again.ctx.data.update(json.loads(json.dumps(d.data)))
    again.start()
    assert again.status() == State.RUNNING
    again.remove()
    assert state(host)["vms"] == {}


def test_switch_choice(host, tmp_path: Path) -> None:
    d = make(host, tmp_path, virtual_switch="Default Switch")
    d.create()
    assert state(host)["vms"]["hv1"]["NetworkAdapters"][0]["SwitchName"] == "Default Switch"
    with pytest.raises(UsageError, match="not found"):
        make(host, tmp_path / "x", name="hv2", virtual_switch="Nope").create()
    sw = [{"Name": "Default Switch", "SwitchType": "Internal"}, {"Name": "LAN", "SwitchType": "External"}]
    assert choose_switch(sw, None, remote=True) == "LAN"
    assert choose_switch(sw, None, remote=False) == "Default Switch"
    with pytest.raises(UsageError, match="No External"):
        choose_switch(sw[:1], None, remote=True)


def test_first_ipv4_skips_ipv6_and_link_local() -> None:
    assert first_ipv4(["fe80::1", "169.254.3.4", "10.1.2.3", "10.9.9.9"]) == "10.1.2.3"
    assert first_ipv4(["fe80::1"]) is None and first_ipv4([]) is None


@pytest.mark.parametrize(("facts", "message", "hint"), [
    ({"module": False}, "PowerShell module is not installed",
     "Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V -All"),
    ({"hyperv_admin": False, "admin": False}, "neither in 'Hyper-V Administrators'", "Add-LocalGroupMember"),
    ({"hypervisor": False}, "hypervisor is not running", "firmware"),
])
def test_prechecks_say_how_to_fix(host, tmp_path: Path, facts: dict, message: str, hint: str) -> None:
    set_host(host, **facts)
    opts = options_for(host, tmp_path)
    verdict = HypervDriver.check_available(opts)
    assert not verdict.ok and message in verdict.message and hint in verdict.hint
    with pytest.raises(HostNotUsable) as info:
        make(host, tmp_path).create()
    assert hint in info.value.hint
    assert state(host)["vms"] == {}


def test_admin_without_group_is_fine(host, tmp_path: Path) -> None:
    set_host(host, hyperv_admin=False, admin=True)
    assert HypervDriver.check_available(options_for(host, tmp_path)).ok


def test_error_records_become_errors_with_hints(host, tmp_path: Path) -> None:
    d = make(host, tmp_path)
    d.create()
    host.state.host.update(lambda s: s["vms"].pop("hv1"))
    assert d.ip() is None and d.ssh_endpoint() is None  # no VM, no address
    with pytest.raises(NotFound) as info:
        d.start()
    assert 'unable to find a virtual machine with name "hv1"' in info.value.message
    assert "machine rm -f" in info.value.hint
    d2 = make(host, tmp_path / "p", name="hv2")
    d2.create()
    set_host(host, hyperv_admin=False, admin=False)
    with pytest.raises(HostNotUsable, match="required permission") as info:
        d2.start()
    assert "Hyper-V Administrators" in info.value.hint


def test_bad_options_are_usage_errors(host, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="memory 1025") as info:
        make(host, tmp_path, memory=1025).create()
    assert "even number" in info.value.hint
    with pytest.raises(UsageError, match="no such file"):
        HypervDriver(context(tmp_path, options_for(host, tmp_path, iso=str(tmp_path / "missing.iso")))).create()
    no_pw = option_values(HypervDriver, {"host": "h", "user": "u"}, environ={})
    with pytest.raises(UsageError, match="needs a user and a password"):
        HypervDriver.make_runner(no_pw)


def test_password_from_env_and_file(host, tmp_path: Path) -> None:
    env_opts = option_values(HypervDriver, {"host": "127.0.0.1", "port": host.port, "user": "HV01\\builder",
                                            "transport": "basic", "scheme": "http"},
                             environ={"HYPERV_PASSWORD": PASSWORD})
    assert HypervDriver.check_available(env_opts).ok
    pw_file = tmp_path / "pw"
    pw_file.write_text(PASSWORD + "\n")
    file_opts = dict(env_opts, password=None, password_file=str(pw_file))
    assert HypervDriver.check_available(file_opts).ok
    assert not HypervDriver.check_available(dict(env_opts, password="wrong")).ok


def test_local_without_windows_points_to_remote_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    verdict = HypervDriver.check_available(option_values(HypervDriver, {}, environ={}))
    assert not verdict.ok and "--hyperv-host" in verdict.hint


def test_local_powershell_goes_through_machine_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows without --hyperv-host the same scripts run through powershell.exe via
    machine.process.run; here the fake host stands in for powershell.exe."""
    from machine import process

    fake = FakeHyperV(tmp_path / "local-host", local_files=True)
    fake.update(lambda s: s["host"].update(vm_path=str(tmp_path / "vms"), program_data=str(tmp_path / "pd")))
    calls: list[list[str]] = []

    def fake_run(args, **kwargs):
        args = [str(a) for a in args]
        calls.append(args)
        assert args[0].endswith("powershell.exe") and args[1:4] == ["-NoProfile", "-NonInteractive", "-EncodedCommand"]
        out, err, code = fake.execute("powershell.exe " + " ".join(args[1:]))
        return process.Result(args, code, out, err)

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(process, "run", fake_run)
    iso = tmp_path / "machine-os.iso"
    iso.write_bytes(b"iso bytes")
    opts = option_values(HypervDriver, {"iso": str(iso)}, environ={})
    assert HypervDriver.check_available(opts).ok
    d = HypervDriver(context(tmp_path, opts, name="loc"))
    d.create()
    vm = fake.load()["vms"]["loc"]
    assert vm["NetworkAdapters"][0]["SwitchName"] == "Default Switch"  # local default
    assert vm["DvdDrives"][0]["Path"].endswith("\\boot.iso")
    assert (fake.local(d.data["vm_dir"]) / "boot.iso").read_bytes() == b"iso bytes"
    assert (fake.local(d.data["vm_dir"]) / "seed.iso").read_bytes() == d.ctx.seed_path.read_bytes()
    d.start()
    assert d.status() == State.RUNNING
    d.remove()
    assert fake.load()["vms"] == {}
    assert len(calls) > 5


def test_failed_create_is_undone_by_remove(host, tmp_path: Path) -> None:
    """The orchestrator calls remove() after a failed create: nothing may stay on the host."""
    d = make(host, tmp_path, cpus=64)  # the fake host has 8 logical processors
    with pytest.raises(DriverError, match="Processor") as info:
        d.create()
    assert "PowerShell error" in info.value.hint
    vm_dir = host.state.host.local(d.data["vm_dir"])
    assert (vm_dir / "seed.iso").is_file() and "hv1" in state(host)["vms"]  # New-VM ran, Set-VMProcessor failed
    d.remove()
    assert not vm_dir.exists() and state(host)["vms"] == {}


def test_save_vm_saves_and_start_vm_resumes(host, tmp_path: Path) -> None:
    d = make(host, tmp_path)
    assert d.features.saved_state
    d.create()
    with pytest.raises(DriverError, match="cannot be performed while the object is in its current state"):
        d.save_state()  # an Off VM: Save-VM refuses
    d.start()
    d.save_state()
    assert d.status() == State.SAVED and d.finish_save()
    assert state(host)["vms"]["hv1"]["State"] == 6 and d.ip() is None
    d.start()  # Start-VM resumes a Saved VM
    assert d.status() == State.RUNNING
    d.discard_saved_state()  # nothing saved any more: no Remove-VMSavedState
    assert d.status() == State.RUNNING
    d.save_state()
    d.discard_saved_state()
    assert d.status() == State.STOPPED and state(host)["vms"]["hv1"]["State"] == 3
    ops = [e["op"] for e in state(host)["log"]]
    assert ops.count("save-vm") == 3 and ops.count("discard-saved-vm") == 1
