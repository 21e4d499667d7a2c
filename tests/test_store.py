"""The machine store: atomic config writes, the per-machine lock across processes, clear errors
for damaged or too-new configs (through the CLI too), and private permissions."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fakes.cli import run

from machine import atomicfile
from machine.errors import ConfigError, LockedError, NotFound, UsageError
from machine.store import SCHEMA_VERSION, MachineConfig, Store


@pytest.fixture
def store(store_root: Path) -> Store:
    return Store(store_root)


def make(store: Store, name: str = "m1", **engine: object) -> MachineConfig:
    cfg = MachineConfig(name=name, driver="none", driver_options={"url": "tcp://127.0.0.1:2376"},
                        engine={"url": "tcp://127.0.0.1:2376", **engine})
    store.make_machine_dir(name)
    store.save(cfg)
    return cfg


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- round trip ---------------------------------------------------------------------------------


def test_save_load_round_trip(store: Store) -> None:
    cfg = make(store, labels=["a=b"])
    cfg.driver_data = {"port": 41234}
    cfg.swarm = {"cluster": "c", "role": "manager"}
    store.save(cfg)
    loaded = store.load("m1")
    assert loaded == cfg
    assert loaded.created_at  # stamped at first save
    data = json.loads(store.config_path("m1").read_text())
    assert next(iter(data)) == "schema_version" and data["schema_version"] == SCHEMA_VERSION
    assert store.names() == ["m1"] and store.exists("m1")


def test_names_lists_directories_without_config(store: Store) -> None:
    """A folder without config (a create killed before writing it) is a machine to show and remove."""
    make(store, "b")
    make(store, "a")
    (store.machines_dir / "half-made").mkdir()
    (store.machines_dir / "keys-only").mkdir()
    (store.machines_dir / "keys-only" / "id_ed25519").write_text("key")
    assert store.names() == ["a", "b", "half-made", "keys-only"]
    with pytest.raises(ConfigError, match="create did not finish \\(its folder is empty\\)") as e:
        store.load("half-made")
    assert e.value.hint == "Remove it with: machine rm half-made"
    with pytest.raises(ConfigError, match="has no config.json"):
        store.load("keys-only")


def test_load_missing_machine_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="Host does not exist: 'ghost'"):
        store.load("ghost")


def test_invalid_name_is_rejected_before_touching_the_disk(store: Store) -> None:
    for bad in ("../escape", "a/b", "", ".hidden", "-x"):
        with pytest.raises(UsageError):
            store.machine_dir(bad)
    assert not (store.root / "escape").exists()


# -- atomic writes --------------------------------------------------------------------------------


def test_crash_between_write_and_rename_keeps_the_old_config(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make(store)
    before = store.config_path("m1").read_bytes()

    def crash(src: object, dst: object) -> None:
        assert Path(str(src)).read_bytes() != before  # the new content was fully written to the temp file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    cfg.driver_data = {"changed": True}
    with pytest.raises(OSError, match="No space left"):
        store.save(cfg)
    monkeypatch.undo()
    assert store.config_path("m1").read_bytes() == before
    assert store.load("m1").driver_data == {}
    leftovers = [p.name for p in store.machine_dir("m1").iterdir() if p.name != "config.json"]
    assert leftovers == [], "the temporary file must be removed"


def test_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    atomicfile.write_atomic(target, "old")

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomicfile.write_atomic(target, "new content")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_write_atomic_replaces_content_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "x.pem"
    atomicfile.write_atomic(target, b"one", mode=0o644)
    atomicfile.write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert mode(target) == 0o600


# -- locking across processes ---------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from machine.store import Store
    store = Store(sys.argv[1])
    with store.lock("m1"):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
""")


def hold_lock(store: Store, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.root), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_gets_locked_error(store: Store) -> None:
    make(store)
    holder = hold_lock(store, 5)
    try:
        started = time.monotonic()
        with pytest.raises(LockedError) as info, store.lock("m1", timeout=0.5):
            pass
        assert 0.4 < time.monotonic() - started < 3
        assert "'m1' is busy" in info.value.message and info.value.hint
        with store.lock("other", timeout=0.5):  # other machines are not blocked
            pass
    finally:
        holder.kill()
        holder.wait()


def test_second_process_waits_for_the_lock(store: Store) -> None:
    make(store)
    holder = hold_lock(store, 1.0)
    started = time.monotonic()
    with store.lock("m1", timeout=10):
        waited = time.monotonic() - started
        assert holder.poll() is not None or holder.stdout.readline().strip() == "released"  # type: ignore[union-attr]
    holder.wait()
    assert 0.5 < waited < 5


def test_lock_is_released_when_the_holder_dies(store: Store) -> None:
    make(store)
    holder = hold_lock(store, 60)
    holder.kill()
    holder.wait()
    with store.lock("m1", timeout=2):
        pass


def test_command_on_a_locked_machine_fails_cleanly(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    make(store)
    import machine.store as store_module

    real_lock = Store.lock

    def quick_lock(self: Store, name: str, timeout: float = 30.0):  # noqa: ANN202
        return real_lock(self, name, timeout=0.3)

    monkeypatch.setattr(store_module.Store, "lock", quick_lock)
    holder = hold_lock(store, 5)
    try:
        result = run("rm", "-y", "m1")
    finally:
        holder.kill()
        holder.wait()
    assert result.code == 1, result
    assert "busy" in result.err and "Traceback" not in result.output
    assert store.exists("m1")


# -- damaged and future configs -------------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is corrupt"),
    ("", "is corrupt"),
    ("[1, 2]", "not a JSON object"),
    ('{"name": "m1", "driver": "none"}', "no valid schema_version"),
    ('{"schema_version": 1, "name": "m1"}', "lacks driver"),
    ('{"schema_version": 1, "name": "m1", "driver": "none", "engine": []}', "'engine' must be an object"),
    ('{"schema_version": 1, "name": "other", "driver": "none"}', "is for machine 'other'"),
])
def test_damaged_config_is_a_config_error_naming_the_file(store: Store, content: str, message: str) -> None:
    make(store)
    path = store.config_path("m1")
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        store.load("m1")
    assert str(path) in info.value.message
    assert message in info.value.message
    assert info.value.hint


def test_binary_config_is_a_config_error(store: Store) -> None:
    make(store)
    store.config_path("m1").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="is corrupt: not UTF-8") as info:
        store.load("m1")
    assert str(store.config_path("m1")) in info.value.message
    result = run("url", "m1")
    assert result.crash is None and result.code == 2, result
    assert "not UTF-8" in result.err and "Hint: " in result.err


def test_future_schema_version_is_a_clear_error(store: Store) -> None:
    make(store)
    path = store.config_path("m1")
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    data["new_field"] = {"from": "the future"}
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        store.load("m1")
    assert f"schema version {SCHEMA_VERSION + 1}" in info.value.message
    assert "newer" in info.value.message
    assert "Upgrade" in info.value.hint


def test_unknown_fields_of_the_current_version_are_ignored(store: Store) -> None:
    make(store)
    path = store.config_path("m1")
    data = json.loads(path.read_text())
    data["added_later"] = 1
    path.write_text(json.dumps(data))
    assert store.load("m1").name == "m1"


@pytest.mark.parametrize("command", [["url", "m1"], ["inspect", "m1"], ["status", "m1"], ["ip", "m1"]])
def test_corrupt_config_through_the_cli_exits_2_with_message_and_hint(store: Store, command: list[str]) -> None:
    make(store)
    store.config_path("m1").write_text('{"schema_version": 1, "name": ')
    result = run(*command)
    assert result.crash is None, result
    assert result.code == 2, result
    assert f"Error: Config file {store.config_path('m1')} is corrupt" in result.err
    assert "Hint: " in result.err
    assert "Traceback" not in result.output


def test_corrupt_config_in_a_real_process(store: Store) -> None:
    make(store)
    store.config_path("m1").write_text("{")
    proc = subprocess.run([sys.executable, "-m", "machine", "url", "m1"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "MACHINE_STORAGE_PATH": str(store.root)})
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("Error: Config file ") and "config.json is corrupt" in lines[0]
    assert lines[1].startswith("Hint: ")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_future_schema_through_the_cli(store: Store) -> None:
    make(store)
    data = json.loads(store.config_path("m1").read_text())
    data["schema_version"] = 1000
    store.config_path("m1").write_text(json.dumps(data))
    result = run("inspect", "m1")
    assert result.code == 2, result
    assert "schema version 1000" in result.err and "Hint: Upgrade" in result.err


# -- permissions ----------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_store_directories_are_private(store: Store) -> None:
    make(store)
    assert mode(store.machines_dir) == 0o700
    assert mode(store.machine_dir("m1")) == 0o700
    assert mode(store.cache_dir) == 0o700
    assert mode(store.config_path("m1")) == 0o600


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_save_alone_makes_private_directories(store: Store) -> None:
    """save() without make_machine_dir must not leave a world-readable machines/ directory."""
    store.save(MachineConfig(name="solo", driver="none"))
    assert mode(store.machine_dir("solo")) == 0o700
    assert mode(store.machines_dir) == 0o700


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_private_even_with_a_permissive_umask(store: Store) -> None:
    old = os.umask(0)
    try:
        make(store, "open")
        store.save(store.load("open"))
    finally:
        os.umask(old)
    assert mode(store.machine_dir("open")) == 0o700
    assert mode(store.config_path("open")) == 0o600


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_keys_are_0600_and_certs_dir_0700(store: Store) -> None:
    from machine.provision import certs

    paths = certs.ensure_ca(store.certs_dir)
    assert mode(store.certs_dir) == 0o700
    assert mode(paths.ca_key) == 0o600
    assert mode(paths.key) == 0o600
    assert mode(paths.ca) == 0o644 and mode(paths.cert) == 0o644
    machine_dir = store.make_machine_dir("m1")
    certs.issue_server_cert(store.certs_dir, machine_dir / "server.pem", machine_dir / "server-key.pem",
                            name="m1", ips=["127.0.0.1"], dns=["localhost"])
    certs.copy_client_certs(store.certs_dir, machine_dir)
    assert mode(machine_dir / "server-key.pem") == 0o600
    assert mode(machine_dir / "key.pem") == 0o600
    assert mode(machine_dir / "ca.pem") == 0o644


def test_remove_deletes_the_machine_directory(store: Store) -> None:
    make(store)
    (store.machine_dir("m1") / "disk.qcow2").write_bytes(b"x")
    store.remove("m1")
    assert not store.machine_dir("m1").exists()
    assert store.names() == []
