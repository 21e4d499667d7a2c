"""The read-only commands' fast path (issue #15 point 9, machine/fastpath.py): `env`, `config`, `url`, `ls -q`,
`active` and `version` answered without click print the same bytes to stdout and stderr and exit with the same
status as the click CLI, and import no driver, click, paramiko, winrm, cryptography or libvirt module.

Each command runs twice as a subprocess: through `machine.entry` (the installed `machine`, fast path first) and
through `machine.cli.main` (the click CLI alone). The machines: a `none` machine; a qemu record that runs (a
process naming its folder holds its pid file) with a TLS engine whose certificate covers its address; the same
stopped; one whose certificate does not cover its address and one with the SSH engine transport (both left to
the CLI, which warns or hints); a damaged config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from machine.store import MachineConfig, Store

HEAVY = ("click", "paramiko", "winrm", "cryptography", "libvirt", "machine.drivers", "machine.orchestrator",
         "requests", "http.client", "ssl")
# what the child prints: its exit status, stdout, stderr and the modules it imported, as JSON on fd PROBE_FD
PROBE = """
import io, json, os, sys
before = set(sys.modules)  # what the interpreter (and an editable install's finder) loaded before machine ran
out, err = io.StringIO(), io.StringIO()
sys.stdout, sys.stderr = out, err
code = 0
try:
    if sys.argv[1] == "cli":
        sys.argv = ["machine", *sys.argv[2:]]
        from machine import cli
        cli.main()
    else:
        from machine.entry import main
        main(sys.argv[2:])
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
os.write(int(os.environ["PROBE_FD"]), json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                        "modules": sorted(sys.modules), "new": sorted(set(sys.modules) - before)}).encode())
"""


def machine_run(path: str, *argv: str, env: dict[str, str]) -> dict:
    """Run `machine ARGV` through `path` ("entry" or "cli") in a fresh interpreter."""
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", PROBE, path, *argv], env={**env, "PROBE_FD": str(write)},
                            pass_fds=(write,),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and not out and not err, (out, err)  # all of it went into the probe's capture
    return json.loads(data)


def qemu_record(store: Store, name: str, *, transport: str = "tls", sans: list[str] | None = None,
                running: bool = True, url: str = "tcp://127.0.0.1:40376") -> subprocess.Popen | None:
    mdir = store.machine_dir(name)
    engine = {"transport": transport, "port": 2376, "url": url if transport == "tls"
              else "ssh://root@127.0.0.1:40022", "cert_sans": {"ips": sans or ["127.0.0.1"], "dns": ["localhost"]}}
    store.save(MachineConfig(name=name, driver="qemu", driver_options={"cpus": 2, "memory": 1024},
                             driver_data={"created": True, "pid_file": "qemu.pid", "ssh_port": 40022},
                             engine=engine, ssh={"user": "root", "key": "id_ed25519", "host": "127.0.0.1",
                                                 "port": 40022}))
    if not running:
        return None
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(mdir)])
    (mdir / "qemu.pid").write_text(f"{proc.pid}\n")
    return proc


@pytest.fixture(scope="module")
def store_env(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    tmp = tmp_path_factory.mktemp("fastpath")
    root = tmp / "store with space"
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(root), "DOCKER_CONFIG": str(tmp / "dc"), "SHELL": "/bin/bash"}
    for key in ("DOCKER_HOST", "DOCKER_CONTEXT", "NO_PROXY", "no_proxy", "PYTHONPATH"):
        env.pop(key, None)
    res = subprocess.run([sys.executable, "-m", "machine", "create", "-d", "none", "--url", "tcp://127.0.0.1:2376",
                          "a"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res
    store = Store(root)
    procs = [qemu_record(store, "dev"), qemu_record(store, "moved", sans=["10.0.0.9"]),
             qemu_record(store, "sshy", transport="ssh"), qemu_record(store, "named", url="tcp://localhost:40376")]
    qemu_record(store, "stopped", running=False)
    store.make_machine_dir("broken")
    (store.machine_dir("broken") / "config.json").write_text("{not json")
    yield env
    for proc in procs:
        if proc:
            proc.kill()
            proc.wait()


FAST = [
    ["version"], ["url", "a"], ["url", "dev"], ["url", "stopped"], ["url"], ["url", "nope"], ["url", "broken"],
    ["url", ""], ["url", "Bad/Name"], ["ls", "-q"], ["ls", "--quiet"], ["active"], ["env", "a"], ["env", "dev"],
    ["env", "--shell", "fish", "a"], ["env", "--shell=powershell", "a"], ["env", "a", "--shell", "cmd"],
    ["env", "--shell", "tcsh", "--no-proxy", "a"], ["env", "-u"], ["env", "-u", "--shell", "fish"], ["env", "-u", "a"],
    ["env", "--unset", "--no-proxy"], ["env", "stopped"], ["env"], ["env", "broken"], ["config", "a"],
    ["config", "dev"], ["config", "stopped"], ["config", "nope"], ["env", "named"], ["config", "named"],
]
# answered from machine.quickread: none of machine.store's imports (together more than the interpreter's start)
STORE_IMPORTS = ("machine.store", "dataclasses", "pathlib", "typing", "threading", "subprocess")
# ... except these, which machine.store answers (a damaged config; a certificate check on a host name)
FROM_STORE = [["url", "broken"], ["env", "broken"], ["env", "named"], ["config", "named"]]
SLOW = [  # left to the CLI (a warning, a hint, a question for click or a driver): the same answer all the same
    ["env", "moved"], ["env", "sshy"], ["config", "sshy"], ["env", "--shell", "BASH", "a"], ["env", "--shell", "nosh"],
    ["env", "a", "b"], ["env", "--help"], ["url", "-x"], ["ls"], ["version", "a"], ["-D", "url", "a"],
    ["ls", "-q", "-t", "1"],
]


@pytest.mark.parametrize("argv", FAST + SLOW, ids=" ".join)
def test_fast_path_answers_as_the_cli(store_env: dict[str, str], argv: list[str]) -> None:
    fast, slow = machine_run("entry", *argv, env=store_env), machine_run("cli", *argv, env=store_env)
    assert (fast["code"], fast["out"], fast["err"]) == (slow["code"], slow["out"], slow["err"])
    assert "Traceback" not in fast["err"]
    if argv in FAST:
        heavy = [m for m in fast["modules"] if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
        assert heavy == [], f"{argv} imported {heavy}"
        from_store = [m for m in STORE_IMPORTS if m in fast["new"]]
        assert bool(from_store) == (argv in FROM_STORE), f"{argv} imported {from_store}"
    else:
        assert "click" in fast["modules"]


def test_the_store_given_on_the_command_line_is_in_the_hint(store_env: dict[str, str]) -> None:
    root = store_env["MACHINE_STORAGE_PATH"]
    fast = machine_run("entry", "-s", root, "env", "a", env=store_env)
    assert fast["code"] == 0 and f"# eval $(machine -s '{root}' env a)" in fast["out"]
    assert fast == {**machine_run("cli", "--storage-path", root, "env", "a", env=store_env),
                    "modules": fast["modules"], "new": fast["new"]}
    assert "click" not in fast["modules"]


def test_active_follows_docker_host(store_env: dict[str, str]) -> None:
    env = {**store_env, "DOCKER_HOST": "tcp://127.0.0.1:40376"}
    fast = machine_run("entry", "active", env=env)
    assert (fast["code"], fast["out"]) == (0, "dev\n")
    assert "click" not in fast["modules"]
    assert (fast["out"], fast["err"]) == (machine_run("cli", "active", env=env)["out"], "")


def test_a_storage_path_spelt_loosely_is_spelt_as_the_cli_does(store_env: dict[str, str]) -> None:
    root = store_env["MACHINE_STORAGE_PATH"]
    for spelt in (root + "/", root + "/./", root.replace("/", "//")):
        for argv in (["-s", spelt, "env", "a"], ["-s", spelt, "config", "dev"]):
            fast = machine_run("entry", *argv, env=store_env)
            assert "machine.store" not in fast["modules"], fast  # (with // at the start, dev is not running: its
            # process names its folder with one /, as the CLI finds too)
            slow = machine_run("cli", *argv, env=store_env)
            assert (fast["code"], fast["out"], fast["err"]) == (slow["code"], slow["out"], slow["err"])


def test_active_follows_the_current_docker_context(store_env: dict[str, str], tmp_path) -> None:  # noqa: ANN001
    env = {**store_env, "DOCKER_CONFIG": str(tmp_path / "dc")}
    res = subprocess.run([sys.executable, "-m", "machine", "use", "a"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res
    fast = machine_run("entry", "active", env=env)
    assert (fast["code"], fast["out"], fast["err"]) == (0, "a\n", "")
    assert "machine.store" not in fast["modules"] and "hashlib" not in fast["modules"]
    assert fast == {**machine_run("cli", "active", env=env), "modules": fast["modules"], "new": fast["new"]}


def test_a_machine_another_command_holds_is_answered_after_it(store_env: dict[str, str]) -> None:
    """The lock is tried without waiting; held, machine.store's lock waits for it as the CLI does."""
    import threading

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with Store(Path(store_env["MACHINE_STORAGE_PATH"])).lock("a"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    threading.Timer(1.0, release.set).start()
    try:
        fast = machine_run("entry", "env", "a", env=store_env)
    finally:
        release.set()
        holder.join()
    assert fast["code"] == 0 and "machine.store" in fast["modules"], fast
    assert fast == {**machine_run("cli", "env", "a", env=store_env), "modules": fast["modules"], "new": fast["new"]}


def test_docker_machine_records_are_read_by_the_store(tmp_path) -> None:  # noqa: ANN001
    from dockermachine_store import DockerMachineStore

    dm = DockerMachineStore(tmp_path / "dm")
    dm.add("old", "none", {"URL": "tcp://127.0.0.1:2376"})
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(dm.root), "DOCKER_CONFIG": str(tmp_path / "dc"),
           "SHELL": "/bin/bash", "DOCKER_HOST": "tcp://127.0.0.1:2376"}
    env.pop("DOCKER_CONTEXT", None)
    for argv in (["env", "old"], ["url", "old"], ["config", "old"], ["active"], ["ls", "-q"]):
        fast = machine_run("entry", *argv, env=env)
        assert fast["code"] == 0 and "click" not in fast["modules"], (argv, fast)
        assert fast == {**machine_run("cli", *argv, env=env), "modules": fast["modules"], "new": fast["new"]}
