"""Issue 13 §3: a damaged machine shows as an Error row and never takes the other machines, or the command,
down with it: no traceback, no hang (a FIFO is never opened), `rm -f` removes it. Also the lock files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes.cli import CliResult, run

URL = "tcp://127.0.0.1:2376"


def create(name: str) -> None:
    result = run("create", "-d", "none", "--url", URL, name)
    assert result.code == 0, result


def edit(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def no_traceback(result: CliResult) -> CliResult:
    assert result.crash is None, result
    assert "Traceback" not in result.output, result
    return result


def _deep(cfg: Path) -> None:
    cfg.write_text("[" * 100000 + "]" * 100000)


def _replace(cfg: Path, old: str, new: str) -> None:
    cfg.write_text(cfg.read_text().replace(old, new))


def _fifo(cfg: Path) -> None:
    cfg.unlink()
    os.mkfifo(cfg)


def _folder_is_a_file(cfg: Path) -> None:
    directory = cfg.parent
    for p in directory.iterdir():
        p.unlink()
    directory.rmdir()
    directory.write_text("not a folder")


def _config_folder(cfg: Path) -> None:
    cfg.unlink()
    cfg.mkdir()


def _symlink(target: str) -> Callable[[Path], None]:
    def damage(cfg: Path) -> None:
        cfg.unlink()
        cfg.symlink_to(target)

    return damage


DAMAGE: dict[str, Callable[[Path], None]] = {
    "deeply-nested": _deep,
    "huge-schema": lambda c: _replace(c, '"schema_version": 1', '"schema_version": ' + "9" * 5000),
    "huge-port": lambda c: edit(c, lambda d: d["engine"].__setitem__("port", 10**4000)),
    "nan-port": lambda c: edit(c, lambda d: d["engine"].__setitem__("port", float("nan"))),
    "abc-port": lambda c: edit(c, lambda d: d["engine"].__setitem__("port", "abc")),
    "schema-0": lambda c: edit(c, lambda d: d.__setitem__("schema_version", 0)),
    "schema-neg": lambda c: edit(c, lambda d: d.__setitem__("schema_version", -7)),
    "schema-true": lambda c: edit(c, lambda d: d.__setitem__("schema_version", True)),
    "fifo": _fifo,
    "dir-is-file": _folder_is_a_file,
    "config-folder": _config_folder,
    "symlink-loop": _symlink("config.json"),
    "dangling": _symlink("nowhere.json"),
    "cluster-list": lambda c: edit(c, lambda d: d["swarm"].__setitem__("cluster", [1])),
}


@pytest.fixture
def damaged(store_root: Path, request: pytest.FixtureRequest) -> str:
    create("good")
    create("bad")
    DAMAGE[request.param](store_root / "machines" / "bad" / "config.json")
    return request.param


@pytest.mark.parametrize("damaged", sorted(DAMAGE), indirect=True)
def test_damaged_machine_is_an_error_row_and_the_rest_works(store_root: Path, damaged: str) -> None:
    ls = no_traceback(run("ls"))
    assert ls.code == 0, ls
    rows = {line.split()[0]: line for line in ls.out.splitlines()[1:]}
    assert "Running" in rows["good"] and "Error" in rows["bad"], ls.out
    assert no_traceback(run("ls", "-q")).out.split() == ["bad", "good"]
    for command in (["inspect"], ["env"], ["config"], ["url"], ["status"], ["use"], ["version"]):
        result = no_traceback(run(*command, "bad"))
        assert result.code in (1, 2) and result.err.startswith("Error"), (command, result)
    assert no_traceback(run("env", "good")).code == 0
    assert no_traceback(run("active")).code in (0, 1)
    refused = no_traceback(run("rm", "-y", "bad"))
    assert refused.code == 2 and "rm -f" in refused.err
    assert no_traceback(run("rm", "-f", "-y", "bad")).code == 0
    assert not os.path.lexists(store_root / "machines" / "bad")
    assert no_traceback(run("ls", "-q")).out.split() == ["good"]


def test_fifo_config_never_blocks(store_root: Path) -> None:
    """A real subprocess with a timeout: opening the FIFO would block forever."""
    create("f")
    _fifo(store_root / "machines" / "f" / "config.json")
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(store_root)}
    for argv in (["inspect", "f"], ["env", "f"], ["rm", "-y", "f"], ["rm", "-f", "-y", "f"]):
        proc = subprocess.run([sys.executable, "-m", "machine", *argv], env=env, capture_output=True, text=True,
                              timeout=60)
        assert "Traceback" not in proc.stderr, proc
    assert not os.path.lexists(store_root / "machines" / "f")


def test_unreadable_machine_folder_as_its_owner(tmp_path: Path) -> None:
    """Mode 000 as a non-root user (root reads anything): an Error row; rm -f removes it."""
    runuser = shutil.which("runuser") or next((p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.path.exists(p)),
                                              "")
    if os.geteuid() != 0 or not runuser:
        pytest.skip("the test runs the CLI as another user, which needs root and runuser")
    user = "machine-test-u"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run([shutil.which("useradd") or "/usr/sbin/useradd", "-M", "-s", "/bin/sh", user], check=True)
    store = tmp_path / "ustore"
    store.mkdir()
    tmp_path.chmod(0o755)
    subprocess.run(["chown", user, str(store)], check=True)
    code = (
        "import os, sys; from fakes.cli import run\n"
        "for n in ('ok1', 'locked'):\n"
        f"    assert run('create', '-d', 'none', '--url', '{URL}', n).code == 0\n"
        f"os.chmod('{store}/machines/locked', 0)\n"
        "ls = run('ls'); assert ls.crash is None and ls.code == 0, ls\n"
        "assert 'Permission denied' in ls.out and 'Running' in ls.out, ls\n"
        "rm = run('rm', '-y', 'locked'); assert rm.crash is None and rm.code == 2, rm\n"
        "rm = run('rm', '-f', '-y', 'locked'); assert rm.crash is None and rm.code == 0, rm\n"
        f"assert not os.path.lexists('{store}/machines/locked')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(store), "MACHINE_STORAGE_PATH": str(store),
           "DOCKER_CONFIG": str(store / "docker"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    probe = subprocess.run([runuser, "-u", user, "--", sys.executable, "-c", "import machine.cli, fakes.cli"],
                           env=env, capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"this Python or checkout cannot be used by {user}: {probe.stderr[-200:]}")
    proc = subprocess.run([runuser, "-u", user, "--", sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc


# -- lock files ----------------------------------------------------------------------------------------------------


def lock_files(store_root: Path) -> list[str]:
    machines = store_root / "machines"
    return sorted(p.name for p in machines.iterdir() if p.name.endswith(".lock")) if machines.exists() else []


def test_lock_files_of_removed_and_never_existing_machines_go(store_root: Path) -> None:
    create("a")
    create("b")
    assert run("rm", "-y", "a").code == 0
    assert run("rm", "-y", "ghost").code == 1
    assert run("env", "ghost").code == 1
    assert run("create", "-d", "none", "--url", "tcp://[::1", "c").code == 2
    assert lock_files(store_root) == [".b.lock"] or lock_files(store_root) == []
    assert ".a.lock" not in lock_files(store_root) and ".ghost.lock" not in lock_files(store_root)


def test_a_deleted_lock_file_is_not_shared(store_root: Path) -> None:
    """Whoever held the lock deleted its file: a waiter that locked the old file must lock the new one."""
    from machine.filelock import FileLock

    path = store_root / "x.lock"
    store_root.mkdir(parents=True, exist_ok=True)
    first = FileLock(path, timeout=1)
    first.acquire()
    first.unlink()
    second = FileLock(path, timeout=1)
    second.acquire()  # the path is free again: a new file
    third = FileLock(path, timeout=0.3)
    from machine.errors import LockedError

    with pytest.raises(LockedError):
        third.acquire()
    second.release()
    first.release()
