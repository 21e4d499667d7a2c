"""docker-machine's store read as it is: records of none, generic, virtualbox, hyperv, kvm and an
unsupported driver, written by the tests in docker-machine's format (tests/dockermachine_store.py) with
real certificates. Listed with their real driver, state, URL and engine version; env, config, url, ip,
inspect and status use their own certificate paths; nothing in their folders changes; rm of an unsupported
driver's machine says what it leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dockermachine_store import DockerMachineStore, serve_engine, tree_digest
from fakes.cli import run
from test_ssh import free_port

from machine.ls import listing
from machine.store import Store

VBOX = Path(__file__).resolve().parent / "fakes" / "vboxmanage" / "VBoxManage"


@pytest.fixture
def dm(store_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A docker-machine store with one machine of each kind, and a fake engine behind the none machine."""
    monkeypatch.setattr(listing, "active_targets", lambda: ("", None))
    store = DockerMachineStore(store_root)
    engine = serve_engine(store, tmp_path / "engine", "24.0.7")
    url = f"tcp://127.0.0.1:{engine.port}"
    store.add("dm-none", "none", {"URL": url}, ip=url.removeprefix("tcp://"))
    store.add("dm-generic", "generic", {"EnginePort": 2376, "SSHKey": str(tmp_path / "id_rsa")}, ip="127.0.0.1",
              ssh_user="root", ssh_port=free_port())  # nothing listens there: the host is down
    store.add("dm-vbox", "virtualbox", {
        "VBoxManager": {}, "HostInterfaces": {}, "CPU": 1, "Memory": 1024, "DiskSize": 20000,
        "NatNicType": "82540EM", "Boot2DockerURL": "", "Boot2DockerImportVM": "", "HostDNSResolver": False,
        "HostOnlyCIDR": "192.168.99.1/24", "HostOnlyNicType": "82540EM", "HostOnlyPromiscMode": "deny",
        "UIType": "headless", "HostOnlyNoDHCP": False, "NoShare": False, "DNSProxy": True, "NoVTXCheck": False,
        "ShareFolder": ""}, ip="192.168.99.100", ssh_port=free_port())
    store.add("dm-hyperv", "hyperv", {"Boot2DockerURL": "", "VSwitch": "External", "DiskSize": 20000,
                                      "MemSize": 1024, "CPU": 1, "MacAddr": "00:15:5d:00:01:02", "VLanID": 0,
                                      "DisableDynamicMemory": False}, ip="192.168.1.50")
    store.add("dm-kvm", "kvm", {"Memory": 1024, "DiskSize": 20000, "CPU": 1, "Network": "default",
                                "PrivateNetwork": "docker-machines", "ISO": "", "Boot2DockerURL": "",
                                "CaCertPath": "", "PrivateKeyPath": "", "DiskPath": "", "CacheMode": "default",
                                "IOMode": "threads"}, ip="192.168.42.10")
    store.add("dm-fusion", "vmwarefusion", {"CPU": 1, "Memory": 1024, "DiskSize": 20000, "SSHPassword": "tcuser"},
              ip="172.16.1.5")
    try:
        yield store
    finally:
        engine.close()


def rows() -> dict[str, dict]:
    result = run("ls", "--format", "json")
    assert result.code == 0 and result.crash is None, result
    return {r["Name"]: r for r in json.loads(result.out)}


def test_listed_with_their_driver_state_url_and_engine_version(dm: DockerMachineStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no VBoxManage here: the row says so
    listed = rows()
    assert set(listed) == {"dm-none", "dm-generic", "dm-vbox", "dm-hyperv", "dm-kvm", "dm-fusion"}
    assert {n: r["DriverName"] for n, r in listed.items()} == {
        "dm-none": "none", "dm-generic": "generic", "dm-vbox": "virtualbox", "dm-hyperv": "hyperv", "dm-kvm": "kvm",
        "dm-fusion": "vmwarefusion"}
    none = listed["dm-none"]
    # the engine answered over mutual TLS with docker-machine's CA and client certificate (certs/: none gets no copies)
    assert (none["State"], none["DockerVersion"], none["Error"]) == ("Running", "v24.0.7", "")
    assert none["URL"] == json.loads((dm.machines / "dm-none" / "config.json").read_text())["Driver"]["URL"]
    assert listed["dm-generic"]["State"] == "Error"  # its SSH port does not answer, and ERRORS says so
    assert listed["dm-generic"]["Error"].startswith("no SSH answer from 127.0.0.1:"), listed["dm-generic"]
    assert "VBoxManage" in listed["dm-vbox"]["Error"]
    assert listed["dm-fusion"]["State"] == "Error"
    assert listed["dm-fusion"]["Error"].startswith("driver vmwarefusion is not supported")
    for row in listed.values():
        assert "damaged" not in row["Error"] and "schema_version" not in row["Error"]
    assert run("ls", "-q", "--filter", "driver=kvm").out == "dm-kvm\n"


def test_the_vm_of_a_virtualbox_record_is_driven_by_our_driver(dm: DockerMachineStore, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-machine's VM is called by the machine's name; our driver finds it by that name (fake VBoxManage)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "VBoxManage").symlink_to(VBOX)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VBOX_USER_HOME", str(tmp_path / "vbox-home"))
    monkeypatch.setenv("FAKE_VBOX_NETWORKS_CONF", str(tmp_path / "networks.conf"))
    monkeypatch.setenv("FAKE_VBOX_ACPI_DELAY", "0")
    vbm = [str(bindir / "VBoxManage")]
    subprocess.run([*vbm, "createvm", "--name", "dm-vbox", "--register"], check=True, capture_output=True)
    assert run("status", "dm-vbox").out == "Stopped\n"
    before = tree_digest(dm.root / "machines")
    subprocess.run([*vbm, "startvm", "dm-vbox", "--type", "headless"], check=True, capture_output=True)
    assert run("status", "dm-vbox").out == "Running\n"
    assert rows()["dm-vbox"]["State"] == "Running"
    result = run("stop", "dm-vbox")
    assert result.code == 0, result
    assert run("status", "dm-vbox").out == "Stopped\n"
    assert tree_digest(dm.root / "machines") == before


def test_env_config_url_ip_use_their_certificates(dm: DockerMachineStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELL", "/bin/bash")
    url = json.loads((dm.machines / "dm-none" / "config.json").read_text())["Driver"]["URL"]
    env = run("env", "dm-none")
    assert env.code == 0, env
    assert f'export DOCKER_HOST="{url}"' in env.out
    assert f'export DOCKER_CERT_PATH="{dm.certs}"' in env.out  # none: the client certificates stay in certs/
    env = run("env", "dm-vbox")
    assert 'export DOCKER_HOST="tcp://192.168.99.100:2376"' in env.out
    assert f'export DOCKER_CERT_PATH="{dm.machines / "dm-vbox"}"' in env.out  # docker-machine's copies
    assert run("config", "dm-kvm").out.splitlines() == [
        "--tlsverify", f'--tlscacert="{dm.machines / "dm-kvm" / "ca.pem"}"',
        f'--tlscert="{dm.machines / "dm-kvm" / "cert.pem"}"', f'--tlskey="{dm.machines / "dm-kvm" / "key.pem"}"',
        "-H=tcp://192.168.42.10:2376"]
    assert run("url", "dm-hyperv").out == "tcp://192.168.1.50:2376\n"
    assert run("url", "dm-fusion").out == "tcp://172.16.1.5:2376\n"  # from the record, driver or not
    assert run("ip", "dm-generic").out == "127.0.0.1\n"
    assert run("status", "dm-none").out == "Running\n"
    result = run("use", "dm-none")
    assert result.code == 0 and f"Current docker context is now 'dm-none' (machine dm-none, {url})" in result.out
    meta = next((Path(os.environ["DOCKER_CONFIG"]) / "contexts" / "meta").rglob("meta.json"))
    assert json.loads(meta.read_text())["Endpoints"]["docker"]["Host"] == url
    tls = next((Path(os.environ["DOCKER_CONFIG"]) / "contexts" / "tls").rglob("ca.pem"))
    assert tls.read_bytes() == (dm.certs / "ca.pem").read_bytes()  # docker-machine's CA, from certs/
    assert run("active").out == "dm-none\n"


def test_inspect_speaks_docker_machine_fields(dm: DockerMachineStore) -> None:
    fmt = ("{{.Driver.IPAddress}}|{{.Driver.SSHPort}}|{{.Driver.SSHUser}}|{{.Driver.SSHKeyPath}}|"
           "{{.Driver.MachineName}}|{{.DriverName}}|{{.HostOptions.AuthOptions.CaCertPath}}|"
           "{{.HostOptions.EngineOptions.TlsVerify}}|{{.Driver.URL}}")
    record = json.loads((dm.machines / "dm-generic" / "config.json").read_text())
    d = record["Driver"]
    assert run("inspect", "-f", fmt, "dm-generic").out == (
        f"127.0.0.1|{d['SSHPort']}|root|{dm.machines / 'dm-generic' / 'id_rsa'}|dm-generic|generic|"
        f"{dm.certs / 'ca.pem'}|true|tcp://127.0.0.1:2376\n")
    url = json.loads((dm.machines / "dm-none" / "config.json").read_text())["Driver"]["URL"]
    assert run("inspect", "-f", "{{.Driver.URL}}", "dm-none").out == url + "\n"
    view = json.loads(run("inspect", "dm-kvm").out)
    assert view["ConfigVersion"] == 3 and view["DriverName"] == "kvm"
    assert view["Driver"]["Network"] == "default" and view["Driver"]["cpus"] == 1  # theirs and ours
    assert view["HostOptions"]["EngineOptions"]["InstallURL"] == "https://get.docker.com"
    fusion = json.loads(run("inspect", "dm-fusion").out)
    assert fusion["Driver"]["SSHPassword"] == "****"


def test_nothing_in_their_folders_changes(dm: DockerMachineStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("SHELL", "/bin/bash")
    before = tree_digest(dm.root / "machines")
    certs = tree_digest(dm.certs)
    for argv in (["ls"], ["ls", "-q"], ["env", "dm-none"], ["env", "dm-generic"], ["config", "dm-vbox"],
                 ["url", "dm-kvm"], ["ip", "dm-none"], ["inspect", "dm-hyperv"], ["status", "dm-none"],
                 ["status", "dm-generic"], ["start", "dm-fusion"], ["stop", "dm-none"], ["use", "dm-none"],
                 ["use", "--unset"], ["ssh", "dm-generic", "true"], ["regenerate-certs", "-f", "dm-none"]):
        run(*argv)
    assert tree_digest(dm.root / "machines") == before
    assert tree_digest(dm.certs) == certs


def test_unsupported_driver_rm_removes_only_the_record_and_says_so(dm: DockerMachineStore) -> None:
    result = run("status", "dm-fusion")
    assert result.code == 1 and "driver vmwarefusion is not supported" in result.err
    result = run("rm", "-y", "dm-fusion")
    assert result.code == 0, result
    assert "uses driver vmwarefusion, which machine does not support: only its record" in result.err
    assert "The VM itself is left alone" in result.err
    assert result.out == "Successfully removed dm-fusion\n"
    assert not (dm.machines / "dm-fusion").exists()
    assert (dm.machines / "dm-none").is_dir()
    dm.add("dm-fusion2", "vmwarefusion", {"CPU": 1}, ip="172.16.1.6")
    result = run("rm", "dm-fusion2", input="n\n")  # the question says it before anything is removed
    assert "uses driver vmwarefusion, which machine does not support: only its record" in result.out
    assert "Not removed." in result.out and (dm.machines / "dm-fusion2" / "config.json").is_file()


def test_other_config_versions_are_named_not_called_damaged(dm: DockerMachineStore) -> None:
    path = dm.machines / "dm-kvm" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "ConfigVersion": 2}))
    row = rows()["dm-kvm"]
    assert "docker-machine record of ConfigVersion 2" in row["Error"] and "damaged" not in row["Error"]


def test_env_on_a_docker_machine_record_imports_no_driver_ssh_or_tls_library(dm: DockerMachineStore) -> None:
    script = textwrap.dedent("""
        import json, sys
        from machine.cli import main
        for argv in (["env", "--shell", "bash", "dm-vbox"], ["ls", "-q"], ["url", "dm-kvm"]):
            try:
                main(argv)
            except SystemExit as e:
                assert e.code == 0, (argv, e.code)
        banned = ("machine.drivers", "paramiko", "libvirt", "winrm", "cryptography", "machine.orchestrator")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in banned or m.startswith(banned))
        print(json.dumps(loaded), file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MACHINE_STORAGE_PATH": str(dm.root)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []
    assert 'DOCKER_HOST="tcp://192.168.99.100:2376"' in proc.stdout


def test_a_record_is_loaded_into_our_model(dm: DockerMachineStore) -> None:
    store = Store(dm.root)
    cfg = store.load("dm-generic")
    assert (cfg.driver, cfg.driver_options["ip_address"], cfg.driver_options["ssh_user"]) == ("generic", "127.0.0.1",
                                                                                             "root")
    assert cfg.origin["format"] == "docker-machine" and cfg.origin["supported"]
    kvm = store.load("dm-kvm")
    assert (kvm.driver, kvm.driver_data["domain"], kvm.driver_options["network"]) == ("libvirt", "dm-kvm", "default")
    assert kvm.ssh["user"] == "docker" and kvm.ssh["key"] == str(dm.machines / "dm-kvm" / "id_rsa")
    hv = store.load("dm-hyperv")
    assert (hv.driver_options["memory"], hv.driver_options["disk_size"]) == (1024, 20000)  # their MB: our MiB
    before = tree_digest(dm.machines)
    store.save(cfg)  # a record is never rewritten
    assert tree_digest(dm.machines) == before


def test_the_domain_of_a_kvm_record_is_driven_by_our_libvirt_driver(store_root: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-machine-kvm names the libvirt domain after the machine; libvirt's in-process test driver has a
    running domain called "test", so a kvm record of that name is driven there instead of qemu:///system."""
    pytest.importorskip("libvirt")
    from machine.dockermachine import record

    monkeypatch.setattr(record, "KVM_URI", "test:///default")
    dm = DockerMachineStore(store_root)
    dm.add("test", "kvm", {"Memory": 1024, "DiskSize": 20000, "CPU": 1, "Network": "default",
                           "PrivateNetwork": "docker-machines", "CacheMode": "default", "IOMode": "threads"},
           ip="192.168.42.10")
    before = tree_digest(dm.machines)
    assert run("status", "test").out == "Running\n"
    try:
        result = run("kill", "test")
        assert result.code == 0, result
        assert run("status", "test").out == "Stopped\n"
    finally:  # the test driver's state lives as long as this process's connection: leave "test" running
        from machine.drivers.libvirt import connection

        domain = connection.connect("test:///default").lookupByName("test")
        if not domain.isActive():
            domain.create()
    assert tree_digest(dm.machines) == before
