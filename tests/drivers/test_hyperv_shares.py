"""Hyper-V shared folders against the fake WinRM host with real pywinrm: what smb-account.ps1 and smb-share.ps1
make (SMB shares: path, access; the machine's local account, folder ACLs), what the guest gets in its seed
(UNC, account, password) and how its seed reader turns it into a cifs mount, removal at rm and at
`machine set --no-share`, and that the share password never reaches config data, the debug log, the fake host's
command log or errors."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes" / "winrm"))

from hv_pytest import context, fake_host, fake_iso, options_for  # noqa: E402
from machine.drivers.hyperv import HypervDriver, smbshares  # noqa: E402
from machine.drivers.hyperv.runner import Runner  # noqa: E402

from machine.errors import DriverError  # noqa: E402
from machine.provision import seediso  # noqa: E402
from machine.shares import mechanisms  # noqa: E402
from tests.seedreader import guest_mount_calls  # noqa: E402

SRC, DATA = "C:\\Users\\me\\src", "C:\\data"
SHARES = [{"tag": "msh0", "host": SRC, "guest": "/c/Users/me/src", "ro": False},
          {"tag": "msh1", "host": DATA, "guest": "/c/data", "ro": True}]


@pytest.fixture
def host(tmp_path: Path):
    with fake_host(tmp_path) as srv:
        for folder in (SRC, DATA):
            srv.state.host.local(folder).mkdir(parents=True)
        yield srv


def state(srv) -> dict:
    return srv.state.host.load()


def make(srv, tmp_path: Path, shares: list[dict]) -> HypervDriver:
    iso = fake_iso(tmp_path)
    seed = tmp_path / "seed-src.iso"
    seediso.build_seed(seed, instance_id="i-hv1", hostname="hv1", authorized_keys=["ssh-ed25519 AAAA k"],
                       shares=[{"tag": s["tag"], "path": s["guest"], "ro": s["ro"]} for s in shares])
    ctx = context(tmp_path, options_for(srv, tmp_path, iso=str(iso)), seed=seed.read_bytes())
    ctx.shares = [dict(s) for s in shares]
    return HypervDriver(ctx)


def seed_shares(path: Path) -> list[dict]:
    raw = seediso.read_iso(path)["user-data"].decode()
    return json.loads(raw.split("\n", 1)[1]).get(seediso.SHARES_KEY, [])


def host_seed(srv, d: HypervDriver) -> Path:
    return srv.state.host.local(d.data["vm_dir"] + "\\seed.iso")


def test_create_makes_one_smb_share_per_folder_for_the_machine_account(host, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    d = make(host, tmp_path, SHARES)
    d.create()
    s = state(host)
    account = d.data["smb"]["account"]
    assert len(account) <= 20 and account == smbshares.account_for("hv1", d.data["vm_dir"])
    principal = "HV01\\" + account
    assert s["smb_shares"] == {
        f"{account}-msh0$": {"Name": f"{account}-msh0$", "Path": SRC, "Access": [
            {"AccountName": principal, "AccessControlType": "Allow", "AccessRight": "Change"}]},
        f"{account}-msh1$": {"Name": f"{account}-msh1$", "Path": DATA, "Access": [
            {"AccountName": principal, "AccessControlType": "Allow", "AccessRight": "Read"}]}}
    assert [r["FileSystemRights"] for r in s["acls"][SRC]] == ["Modify"]
    assert [r["FileSystemRights"] for r in s["acls"][DATA]] == ["ReadAndExecute"]
    # the guest's seed (here and the VM's copy on DVD 1:1) says how to mount each share
    entries = seed_shares(d.ctx.seed_path)
    assert host_seed(host, d).read_bytes() == d.ctx.seed_path.read_bytes()
    assert [(e["tag"], e["path"], e["ro"], e["cifs"]["unc"], e["cifs"]["user"]) for e in entries] == [
        ("msh0", "/c/Users/me/src", False, f"//192.168.1.20/{account}-msh0$", account),
        ("msh1", "/c/data", True, f"//192.168.1.20/{account}-msh1$", account)]
    password = entries[0]["cifs"]["password"]
    assert entries[1]["cifs"]["password"] == password
    assert s["users"][account]["password_sha256"] == hashlib.sha256(password.encode()).hexdigest()
    # ... and nowhere else: driver data (saved in config.json), the debug log, the host's command log
    assert d.data["share_mechanism"] == "smb" and d.data["smb"]["shares"] == [[x["tag"], x["host"], x["ro"]]
                                                                              for x in SHARES]
    assert password not in json.dumps(d.data)
    assert "hyperv smb-account" in caplog.text and password not in caplog.text
    calls = [e["params"] for e in s["log"] if e["op"] == "smb-share"]
    assert calls == [{"Account": account, "Name": f"{account}-msh0$", "Path": SRC, "ReadOnly": False},
                     {"Account": account, "Name": f"{account}-msh1$", "Path": DATA, "ReadOnly": True}]
    assert password not in json.dumps(s["log"])


def test_remove_takes_shares_grants_and_account_away(host, tmp_path: Path) -> None:
    d = make(host, tmp_path, SHARES)
    d.create()
    d.remove()
    s = state(host)
    assert s["smb_shares"] == {} and s["acls"] == {} and s["users"] == {} and s["vms"] == {}
    assert "smb" not in d.data


def test_set_no_share_and_changed_shares_apply_at_start(host, tmp_path: Path) -> None:
    d = make(host, tmp_path, SHARES)
    d.create()
    first = seed_shares(d.ctx.seed_path)[0]["cifs"]["password"]
    # `machine set --share C:\data:ro` on the stopped machine: the orchestrator rewrote the seed's plain list
    d.ctx.shares = [dict(SHARES[1], tag="msh0")]
    seediso.replace_shares(d.ctx.seed_path, [{"tag": "msh0", "path": "/c/data", "ro": True}])
    d.start()
    s = state(host)
    account = d.data["smb"]["account"]
    assert list(s["smb_shares"]) == [f"{account}-msh0$"] and s["smb_shares"][f"{account}-msh0$"]["Path"] == DATA
    assert SRC not in s["acls"] and [r["FileSystemRights"] for r in s["acls"][DATA]] == ["ReadAndExecute"]
    entries = seed_shares(d.ctx.seed_path)
    assert entries[0]["cifs"]["password"] != first
    assert s["users"][account]["password_sha256"] == hashlib.sha256(entries[0]["cifs"]["password"].encode()).hexdigest()
    assert host_seed(host, d).read_bytes() == d.ctx.seed_path.read_bytes()  # the VM boots the new seed
    assert s["vms"]["hv1"]["State"] == 2
    d.stop()
    # `machine set --no-share`
    d.ctx.shares = []
    seediso.replace_shares(d.ctx.seed_path, [])
    d.start()
    s = state(host)
    assert s["smb_shares"] == {} and s["acls"] == {} and s["users"] == {}
    assert "smb" not in d.data and "share_mechanism" not in d.data
    assert seed_shares(host_seed(host, d)) == []


def test_missing_host_folder_fails_clearly_without_the_password(host, tmp_path: Path) -> None:
    missing = "C:\\nowhere"
    d = make(host, tmp_path, [SHARES[0], {"tag": "msh1", "host": missing, "guest": "/c/nowhere", "ro": False}])
    with pytest.raises(DriverError) as err:
        d.create()
    assert missing in err.value.message and "no such folder on the Hyper-V host" in err.value.message
    assert "vms" in state(host) and state(host)["vms"] == {}  # failed before the VM was made
    d.remove()  # the orchestrator's undo: nothing of the machine stays on the host
    s = state(host)
    assert s["smb_shares"] == {} and s["acls"] == {} and s["users"] == {}


def test_no_host_address_on_the_switch(host, tmp_path: Path) -> None:
    host.state.host.update(lambda s: s.update(host_ipv4={}))
    d = make(host, tmp_path, SHARES)
    with pytest.raises(DriverError, match="no IPv4 address on switch 'External LAN'"):
        d.create()


def test_runner_masks_secrets_in_errors_and_debug_log(caplog) -> None:
    caplog.set_level(logging.DEBUG)

    class Echo(Runner):
        def run_line(self, line: str) -> tuple[str, str, int]:
            return "", "At line:3 char:13\r\n+ $Password = 'Sw0rd-Aa1'\r\nUnexpected token.", 1

    r = Echo()
    r.secrets = ("Sw0rd-Aa1",)
    with pytest.raises(DriverError) as err:
        r.call("smb-unshare", account="a", prefix="a-")
    assert "Sw0rd-Aa1" not in err.value.message and "****" in err.value.message
    assert "Sw0rd-Aa1" not in caplog.text and "$Password = '****'" in caplog.text


def test_smb_is_the_drivers_mechanism_where_hyperv_is_local() -> None:
    assert HypervDriver.features.share_mechanisms == ("smb",)
    assert mechanisms.choose(("smb",), "win32").mechanism == "smb"
    assert mechanisms.choose(("smb",), "linux") is None
    assert "only a Hyper-V on this Windows machine" in mechanisms.explain(("smb",), "linux")
    assert smbshares.new_password() != smbshares.new_password()
    assert "," not in smbshares.new_password()


@pytest.mark.skipif(not shutil.which("jq"), reason="jq is not installed")
def test_guest_seed_reader_passes_the_cifs_source(tmp_path: Path) -> None:
    entries = [{"tag": "msh0", "path": "/c/src", "ro": False,
                "cifs": {"unc": "//192.168.1.20/machine-ab-msh0$", "user": "machine-ab", "password": "p'w-Aa1"}},
               {"tag": "msh1", "path": "/src", "ro": True}]
    calls = guest_mount_calls(tmp_path, entries, 'printf "%s|%s|%s|%s|%s|%s\\n" "$@"')
    assert calls == ["msh0|/c/src|false|//192.168.1.20/machine-ab-msh0$|machine-ab|p'w-Aa1",
                                       "msh1|/src|true|||"]
