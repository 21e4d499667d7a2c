"""`machine import` of docker-machine records (round trip with --undo), and the docker-machine keys our own
config files carry so docker-machine reads them without rewriting them (against a real docker-machine
binary when one is on PATH)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from dockermachine_store import DockerMachineStore, tree_digest
from fakes.cli import run

from machine.store import MachineConfig, Store

BACKUP = "config.json.docker-machine"


@pytest.fixture
def dm(store_root: Path) -> DockerMachineStore:
    store = DockerMachineStore(store_root)
    store.add("dm-generic", "generic", {"EnginePort": 2376, "SSHKey": "/home/u/.ssh/id_rsa"}, ip="127.0.0.1",
              ssh_user="root", ssh_port=1)
    store.add("dm-vbox", "virtualbox", {"VBoxManager": {}, "HostInterfaces": {}, "CPU": 2, "Memory": 2048,
                                        "DiskSize": 30000, "HostOnlyCIDR": "192.168.99.1/24", "UIType": "headless"},
              ip="192.168.99.101", ssh_port=40022, labels=("tier=web",))
    store.add("dm-none", "none", {"URL": "tcp://127.0.0.1:2376"}, ip="127.0.0.1:2376")
    store.add("dm-fusion", "vmwarefusion", {"CPU": 1}, ip="172.16.1.5")
    return store


def test_import_round_trips(dm: DockerMachineStore) -> None:
    original = tree_digest(dm.machines)
    raw = (dm.machines / "dm-vbox" / "config.json").read_bytes()
    result = run("import", "dm-vbox", "dm-generic")
    assert result.code == 0, result
    kept = dm.machines / "dm-vbox" / BACKUP
    assert f"dm-vbox: imported (virtualbox driver); docker-machine's config kept as {kept}" in result.out
    assert (dm.machines / "dm-vbox" / BACKUP).read_bytes() == raw
    data = json.loads((dm.machines / "dm-vbox" / "config.json").read_text())
    keys = list(data)
    # ours first, docker-machine's after (Go's decoder lets the later `Driver` win over our `driver`)
    assert keys[0] == "schema_version" and keys[-5:] == ["ConfigVersion", "Driver", "DriverName", "HostOptions", "Name"]
    theirs = json.loads(raw)
    assert {k: data[k] for k in keys[-5:]} == theirs  # docker-machine still drives it
    assert (data["driver"], data["imported_from"], data["driver_data"]["uuid"]) == ("virtualbox", "docker-machine",
                                                                                   "dm-vbox")
    assert data["ssh"]["key"] == "id_rsa" and data["engine"]["labels"] == ["tier=web"]
    assert "192.168.99.101" in data["engine"]["cert_sans"]["ips"]  # read from docker-machine's server.pem
    cfg = Store(dm.root).load("dm-vbox")
    assert not cfg.origin and cfg.driver_options["memory"] == 2048
    # only config.json and the backup differ in the machine folders
    after = tree_digest(dm.machines)
    changed = {k for k in set(after) | set(original) if after.get(k) != original.get(k)}
    assert changed == {f"{m}/{f}" for m in ("dm-vbox", "dm-generic") for f in ("config.json", BACKUP)}
    assert run("inspect", "-f", "{{.DriverName}} {{.Driver.SSHPort}} {{.Driver.cpus}}", "dm-vbox").out == \
        "virtualbox 40022 2\n"
    assert run("import", "dm-vbox").code == 2  # nothing left to import
    result = run("import", "--undo", "dm-vbox", "dm-generic")
    assert result.code == 0, result
    assert tree_digest(dm.machines) == original
    assert Store(dm.root).load("dm-vbox").origin["format"] == "docker-machine"


def test_import_all_skips_unsupported_drivers_and_says_so(dm: DockerMachineStore) -> None:
    result = run("import", "--all")
    assert result.code == 0, result
    assert "dm-fusion: skipped: vmwarefusion is not a driver machine has" in result.err
    assert {line.split(":")[0] for line in result.out.splitlines()} == {"dm-generic", "dm-vbox", "dm-none"}
    assert not (dm.machines / "dm-fusion" / BACKUP).exists()
    result = run("import", "dm-fusion")
    assert result.code == 1 and "driver vmwarefusion is not supported" in result.err
    assert "cannot be imported" in result.err


def test_import_of_our_own_machine_or_without_backup_is_refused(dm: DockerMachineStore) -> None:
    assert run("create", "-d", "none", "--url", "tcp://127.0.0.1:2399", "mine").code == 0
    result = run("import", "mine")
    assert result.code == 2 and "is machine's own: there is nothing to import" in result.err
    result = run("import", "--undo", "mine")
    assert result.code == 1 and "has no docker-machine backup" in result.err
    assert run("import").code == 2 and run("import", "--all", "mine").code == 2


def test_our_engine_features_apply_only_after_import(dm: DockerMachineStore) -> None:
    result = run("provision", "dm-generic")
    assert result.code == 1 and "is docker-machine's" in result.err and "machine import dm-generic" in result.err
    assert run("import", "dm-generic").code == 0
    result = run("provision", "dm-generic")  # now ours: it tries (the host is down)
    assert result.code == 1 and "docker-machine's" not in result.err


def test_our_configs_carry_docker_machine_keys(store_root: Path) -> None:
    assert run("create", "-d", "none", "--url", "tcp://127.0.0.1:2399", "n1").code == 0
    store = Store(store_root)
    store.save(MachineConfig(name="q1", driver="qemu", driver_data={"ssh_port": 40022},
                             engine={"transport": "tls", "url": "tcp://127.0.0.1:40376"},
                             ssh={"user": "root", "key": "id_ed25519"}))
    n1 = json.loads(store.config_path("n1").read_text())
    assert list(n1)[0] == "schema_version" and list(n1)[-5:] == ["ConfigVersion", "Driver", "DriverName",
                                                                 "HostOptions", "Name"]
    assert (n1["ConfigVersion"], n1["DriverName"], n1["Driver"]["URL"], n1["Name"]) == (3, "none",
                                                                                       "tcp://127.0.0.1:2399", "n1")
    q1 = json.loads(store.config_path("q1").read_text())
    assert q1["DriverName"] == "machine-qemu"  # docker-machine lists it as a driver it does not have
    assert (q1["Driver"]["SSHPort"], q1["Driver"]["SSHKeyPath"]) == (40022, str(store.machine_dir("q1") / "id_ed25519"))
    assert q1["HostOptions"]["AuthOptions"]["CaCertPath"] == str(store.certs_dir / "ca.pem")
    assert store.load("q1").driver == "qemu"  # our loader reads our keys


@pytest.mark.skipif(shutil.which("docker-machine") is None, reason="no docker-machine binary on PATH (build it from "
                    "github.com/docker/machine to run this check)")
def test_docker_machine_reads_our_files_without_rewriting_them(dm: DockerMachineStore) -> None:
    assert run("create", "-d", "none", "--url", "tcp://127.0.0.1:2399", "ours").code == 0
    Store(dm.root).save(MachineConfig(name="q1", driver="qemu", engine={"url": "tcp://127.0.0.1:40376"}))
    shutil.rmtree(dm.machines / "dm-fusion")  # docker-machine's own driver would try to reach its provider
    assert run("import", "dm-vbox").code == 0
    before = tree_digest(dm.machines)
    proc = subprocess.run(["docker-machine", "-s", str(dm.root), "ls", "--format", "{{.Name}}|{{.DriverName}}|"
                           "{{.URL}}|{{.Error}}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc
    assert "Could not unmarshal" not in proc.stderr
    lines = {line.split("|")[0]: line.split("|") for line in proc.stdout.splitlines()}
    assert lines["ours"][1:3] == ["none", "tcp://127.0.0.1:2399"]
    assert lines["q1"][1] == "not-found" and "machine-qemu" in lines["q1"][3]
    assert lines["dm-vbox"][1] == "virtualbox"  # imported: still docker-machine's driver and VM
    assert tree_digest(dm.machines) == before  # nothing "migrated", no config.json.bak
    assert not list(dm.machines.glob("*/config.json.bak"))


def test_a_config_docker_machine_migrated_names_our_backup(store_root: Path) -> None:
    """Before our configs carried docker-machine's keys, docker-machine's ls rewrote them (keeping ours as
    config.json.bak): such a machine says where its config is, instead of being called damaged."""
    assert run("create", "-d", "none", "--url", "tcp://127.0.0.1:2399", "old").code == 0
    mdir = Store(store_root).machine_dir("old")
    (mdir / "config.json").rename(mdir / "config.json.bak")
    # what docker-machine 0.16 wrote in its place (seen with a docker-machine built from its source)
    (mdir / "config.json").write_text(json.dumps({
        "ConfigVersion": 3, "Driver": {"StorePath": "."}, "DriverName": "",
        "HostOptions": {"Driver": "", "Memory": 0, "Disk": 0, "EngineOptions": {"TlsVerify": True},
                        "SwarmOptions": {}, "AuthOptions": {"StorePath": ""}}, "Name": "old"}, indent=4))
    result = run("env", "old")
    assert result.code == 2 and "was rewritten by docker-machine" in result.err
    assert f"mv {mdir / 'config.json.bak'} {mdir / 'config.json'}" in result.err
    (mdir / "config.json.bak").replace(mdir / "config.json")
    assert run("url", "old").out == "tcp://127.0.0.1:2399\n"


def test_after_import_our_certificate_renewal_signs_with_docker_machines_ca(dm: DockerMachineStore) -> None:
    """Renewal (what start/env/ls do when the address leaves the certificate) issues server.pem from the store's
    CA, which is docker-machine's RSA CA: the engine's certificate still verifies for docker-machine's clients."""
    import ssl

    from cryptography import x509

    from machine.provision import certs

    assert run("import", "dm-generic").code == 0
    store = Store(dm.root)
    cfg = store.load("dm-generic")
    assert not certs.covers(store, cfg, "10.0.0.9")
    cert, _ = certs.issue_machine_cert(store, cfg, extra=["10.0.0.9"])
    assert certs.covers(store, cfg, "10.0.0.9") and certs.covers(store, cfg, "127.0.0.1")
    issued = x509.load_pem_x509_certificate(cert.read_bytes())
    issued.verify_directly_issued_by(dm.ca)
    ctx = ssl.create_default_context(cafile=str(dm.certs / "ca.pem"))  # the chain loads as a client would
    assert ctx.cert_store_stats()["x509_ca"] == 1
    assert (dm.certs / "cert.pem").read_bytes() == (dm.machines / "dm-generic" / "cert.pem").read_bytes()
