"""`machine set`: change a stopped machine's settable driver options (qemu here, with no VM: a machine
whose disk exists and whose qemu is not running is Stopped; a sleeping process naming the machine dir
stands in for a running qemu). Also the docker context following a machine's new URL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fakes.cli import CliResult, run
from machine.drivers.qemu.kvmprobe import kill_pid

from machine import orchestrator, process
from machine.client import dockercontext
from machine.store import MachineConfig, Store


def qemu_machine(store_root: Path, name: str = "dev", **options: object) -> Store:
    store = Store(store_root)
    opts = {"cpus": 2, "memory": 1024, "disk_size": 20480, "image": "machine-os", "accel": "tcg", "restrict": "auto",
            "host_address": "127.0.0.1", **options}
    data = {"created": True, "boot": "kernel", "ssh_port": 40022, "engine_port": 40376, "ssh_user": "root"}
    store.save(MachineConfig(name=name, driver="qemu", driver_options=opts, driver_data=data,
                             engine={"transport": "tls", "url": "tcp://127.0.0.1:40376", "port": 2376},
                             ssh={"user": "root", "key": "id_ed25519"}))  # what create saves for a managed engine
    (store.machine_dir(name) / "data.qcow2").write_bytes(b"")
    return store


def saved(store: Store, name: str = "dev") -> dict:
    return json.loads(store.config_path(name).read_text())["driver_options"]


def test_set_changes_options_of_a_stopped_machine(store_root: Path) -> None:
    store = qemu_machine(store_root)
    res = run("set", "dev", "--qemu-memory", "2048", "--qemu-host-address", "127.0.0.2", "--qemu-cpus", "2")
    assert res.code == 0, res
    assert "--qemu-memory: 1024 -> 2048" in res.out and "--qemu-host-address: 127.0.0.1 -> 127.0.0.2" in res.out
    assert "cpus" not in res.out  # unchanged values are not reported
    assert "machine start dev" in res.err
    opts = saved(store)
    assert (opts["memory"], opts["host_address"], opts["cpus"]) == (2048, "127.0.0.2", 2)
    driver = orchestrator.driver_for(store, store.load("dev"))
    assert driver.ip() == "127.0.0.2" and driver.engine_address(2376) == ("127.0.0.2", 40376)


def test_set_takes_sizes_with_a_unit(store_root: Path) -> None:
    store = qemu_machine(store_root)
    res = run("set", "dev", "--qemu-memory", "3g")
    assert res.code == 0 and "--qemu-memory: 1024 -> 3072" in res.out, res
    assert saved(store)["memory"] == 3072 and saved(store)["disk_size"] == 20480


def test_same_values_change_nothing(store_root: Path) -> None:
    store = qemu_machine(store_root)
    before = store.config_path("dev").read_text()
    res = run("set", "dev", "--qemu-memory", "1024")
    assert res.code == 0 and "Nothing changed" in res.out, res
    assert store.config_path("dev").read_text() == before


@pytest.mark.parametrize(("argv", "code", "words"), [
    (["--qemu-host-address", "0.0.0.0"], 2, ["Invalid value '0.0.0.0' for --qemu-host-address", "IPv4 address"]),
    (["--qemu-host-address", "localhost"], 2, ["Invalid value 'localhost'"]),
    (["--qemu-disk-size", "40"], 2, ["No such option", "--qemu-disk-size"]),  # not settable: not offered
    (["--qemu-memory", "2"], 2, ["Invalid value 2 for --qemu-memory", "did you mean 2 GiB? Write 2g or 2048"]),
    (["--qemu-memory", "2x"], 2, ["Invalid value '2x' for --qemu-memory", "or with a unit: 20g"]),
    (["--virtualbox-memory", "2048"], 2, ["No such option", "--qemu-memory"]),  # no settable virtualbox options
    ([], 2, ["Nothing to change", "--qemu-memory"]),
])
def test_bad_input_is_refused_and_nothing_is_saved(store_root: Path, argv: list[str], code: int,
                                                    words: list[str]) -> None:
    store = qemu_machine(store_root)
    before = store.config_path("dev").read_text()
    res = run("set", "dev", *argv)
    assert res.code == code and res.crash is None, res
    for word in words:
        assert word in res.output, res
    assert store.config_path("dev").read_text() == before


def test_unknown_machine(store_root: Path) -> None:
    res = run("set", "ghost", "--qemu-memory", "2048")
    assert res.code == 1 and "Host does not exist: 'ghost'" in res.err, res


def test_running_machine_is_refused(store_root: Path) -> None:
    store = qemu_machine(store_root)
    mdir = store.machine_dir("dev")
    pid = process.spawn([sys.executable, "-c", "import time; time.sleep(60)", str(mdir / "console.log")])
    try:
        (mdir / "qemu.pid").write_text(f"{pid}\n")
        res = run("set", "dev", "--qemu-memory", "2048")
        assert res.code == 1 and "can change only while it is stopped" in res.err and "machine stop dev" in res.err
        assert saved(store)["memory"] == 1024
    finally:
        kill_pid(pid)


def test_settable_changes_names_what_can_change() -> None:
    from machine.drivers.qemu import QemuDriver

    from machine.driver import settable_changes
    from machine.errors import UsageError

    with pytest.raises(UsageError) as e:
        settable_changes(QemuDriver, {}, {"image": "debian-12"})
    assert "--qemu-image cannot be changed after create" in e.value.message
    assert "--qemu-memory" in e.value.hint and "--qemu-host-address" in e.value.hint
    assert settable_changes(QemuDriver, {}, {"memory": "1024"}) == {}  # the default, as a string from the CLI
    assert settable_changes(QemuDriver, {"memory": 1024}, {"memory": 512}) == {"memory": (1024, 512)}


def _context_host(name: str) -> str:
    meta = dockercontext.read_meta(dockercontext.context_name_for(name))
    assert meta is not None
    return meta["Endpoints"]["docker"]["Host"]


def test_docker_context_follows_a_new_url(store_root: Path) -> None:
    store = qemu_machine(store_root)
    mdir = store.machine_dir("dev")
    for f in ("ca.pem", "cert.pem", "key.pem"):
        (mdir / f).write_text(f"{f} v1\n")
    cfg = store.load("dev")
    orchestrator.sync_context(store, cfg)  # no context yet: none is made
    assert dockercontext.read_meta(dockercontext.context_name_for("dev")) is None
    dockercontext.use("dev", cfg.engine["url"], mdir, "machine dev (qemu)", store.root)
    cfg.engine["url"] = "tcp://127.0.0.2:40376"
    (mdir / "cert.pem").write_text("cert.pem v2\n")
    orchestrator.sync_context(store, cfg)
    assert _context_host("dev") == "tcp://127.0.0.2:40376"
    tls = dockercontext.tls_dir(dockercontext.context_name_for("dev")) / "docker"
    assert (tls / "cert.pem").read_text() == "cert.pem v2\n"


def test_env_of_a_stopped_machine_outside_its_certificate_warns(store_root: Path) -> None:
    """env cannot renew the certificate of a machine that is not running: it says what to do instead."""
    store = qemu_machine(store_root)
    cfg = store.load("dev")
    cfg.engine["url"] = "tcp://127.0.0.9:40376"
    cfg.engine["tls_sans"] = []
    store.save(cfg)
    res: CliResult = run("env", "dev")
    assert res.code == 0, res
    assert 'DOCKER_HOST="tcp://127.0.0.9:40376"' in res.out
    assert "does not cover 127.0.0.9" in res.err and "machine regenerate-certs dev" in res.err
