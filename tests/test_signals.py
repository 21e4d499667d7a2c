"""Issue 13 §4: signals and crashes. Real `machine` subprocesses (python -m machine: the same entry point as the
installed command) get SIGTERM/SIGINT at random moments, or are killed with SIGKILL at chosen points; `use`
races `rm`. Nothing may be left half-made, look healthy when it is not, or print a traceback from our code."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

URL = "tcp://127.0.0.1:2376"


def machine(store: Path, *argv: str, docker_config: Path | None = None, **kw: object) -> subprocess.Popen:
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(store),
           "DOCKER_CONFIG": str(docker_config or store.parent / "docker-config")}
    env.pop("DOCKER_HOST", None)
    return subprocess.Popen([sys.executable, "-m", "machine", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)  # type: ignore[call-overload]


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def our_traceback(output: str) -> bool:
    """A traceback with a frame in this package. One raised while the interpreter itself starts (site, the
    editable-install finder), before machine's entry point runs, is outside the program's reach."""
    if "Traceback" not in output:
        return False
    frames = [line for line in output.split("Traceback")[-1].splitlines() if line.strip().startswith("File ")]
    return any("/machine/" in f or "/drivers/" in f for f in frames)


def machine_state(store: Path, name: str) -> str:
    """absent | complete | broken (what `ls` shows for it)."""
    directory = store / "machines" / name
    if not os.path.lexists(directory):
        return "absent"
    try:
        cfg = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return "broken"
    if cfg.get("engine", {}).get("url") and not (directory / ".creating").exists():
        return "complete"
    return "broken"


def tmp_files(store: Path) -> list[str]:
    return [str(p) for p in store.rglob("*.tmp")]


@pytest.mark.slow
def test_sigterm_and_sigint_at_random_moments_roll_back(store_root: Path) -> None:
    assert finish(machine(store_root, "create", "-d", "none", "--url", URL, "warm")).count("ready") == 1
    seen: dict[str, int] = {}
    rng = random.Random(13)
    for _ in range(16):
        sig = rng.choice([signal.SIGTERM, signal.SIGINT])
        proc = machine(store_root, "create", "-d", "none", "--url", URL, "t")
        time.sleep(rng.uniform(0, 1.2))
        proc.send_signal(sig)
        out = finish(proc)
        state = machine_state(store_root, "t")
        seen[state] = seen.get(state, 0) + 1
        assert not our_traceback(out), out
        assert state in ("absent", "complete"), (sig, out)
        assert not tmp_files(store_root), out
        if state == "absent":
            assert proc.returncode in (128 + sig, -sig, 1), (proc.returncode, out)  # -sig: before Python started
        listing = finish(machine(store_root, "ls"))
        assert "Traceback" not in listing and "Error" not in listing, listing
        finish(machine(store_root, "rm", "-y", "t"))
    assert sum(seen.values()) == 16


KILL_AT = {
    # SIGKILL itself at a chosen moment of a real create: before the config exists, and after (no URL yet)
    "before-config": "from machine import store as s\n"
                     "s.MachineConfig.to_json = lambda self: os.kill(os.getpid(), signal.SIGKILL)\n",
    "after-config": "from machine.drivers import none as n\n"
                    "n.NoneDriver.create = lambda self: os.kill(os.getpid(), signal.SIGKILL)\n",
}


@pytest.mark.parametrize("moment", sorted(KILL_AT))
def test_kill_9_of_a_create_shows_broken_and_rm_removes_it(store_root: Path, moment: str) -> None:
    code = "import os, signal, sys\n" + KILL_AT[moment] + textwrap.dedent("""
        from machine.entry import main
        main(["create", "-d", "none", "--url", "tcp://127.0.0.1:2376", "k"])
    """)
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(store_root), "DOCKER_CONFIG": str(store_root.parent / "dc")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc
    assert (store_root / "machines" / "k" / ".creating").exists()
    listing = finish(machine(store_root, "ls"))
    row = next(line for line in listing.splitlines() if line.startswith("k "))
    assert "Error" in row and "did not finish" in row and "Running" not in row, listing
    again = finish(machine(store_root, "create", "-d", "none", "--url", URL, "k"))
    assert "already exists" in again and "machine rm k" in again
    env_out = finish(machine(store_root, "env", "k"))
    assert "did not finish" in env_out and "Traceback" not in env_out
    rm = machine(store_root, "rm", "-y", "k")
    assert "Successfully removed k" in finish(rm) and rm.returncode == 0
    assert not os.path.lexists(store_root / "machines" / "k")
    assert not (store_root / "machines" / ".k.lock").exists()


def test_kill_9_at_random_moments_never_looks_healthy_when_half_made(store_root: Path) -> None:
    rng = random.Random(9)
    for _ in range(8):
        proc = machine(store_root, "create", "-d", "none", "--url", URL, "r")
        time.sleep(rng.uniform(0, 1.2))
        proc.kill()
        finish(proc)
        state = machine_state(store_root, "r")
        listing = finish(machine(store_root, "ls"))
        assert "Traceback" not in listing
        if state == "broken":
            assert "did not finish" in listing, listing
        if state != "absent":
            rm = machine(store_root, "rm", "-y", "r")
            assert "Successfully removed" in finish(rm), state
        assert machine_state(store_root, "r") == "absent"


def current_context(docker_config: Path) -> str:
    try:
        return json.loads((docker_config / "config.json").read_text()).get("currentContext", "")
    except (OSError, ValueError):
        return ""


@pytest.mark.slow
def test_use_and_rm_of_one_machine_are_serialised(store_root: Path, tmp_path: Path) -> None:
    docker_config = tmp_path / "dc"
    for _ in range(8):
        assert "ready" in finish(machine(store_root, "create", "-d", "none", "--url", URL, "vict",
                                         docker_config=docker_config))
        rm = machine(store_root, "rm", "-y", "vict", docker_config=docker_config)
        use = machine(store_root, "use", "vict", docker_config=docker_config)
        outputs = finish(rm) + finish(use)
        assert "Traceback" not in outputs, outputs
        assert rm.returncode == 0, outputs
        assert use.returncode in (0, 1), outputs  # used before rm, or found no machine
        assert current_context(docker_config) != "vict", outputs
        assert not (docker_config / "contexts" / "meta").exists() or not any(
            "vict" in p.read_text() for p in (docker_config / "contexts" / "meta").rglob("meta.json")), outputs


def test_a_signal_inside_set_name_is_an_interrupt_not_a_traceback(store_root: Path) -> None:
    """Python 3.11 wraps an exception raised in a descriptor's __set_name__ (platform.py's uname_result, while
    an import runs) in a RuntimeError: a SIGTERM landing there must still end as "Interrupted." with 143."""
    code = textwrap.dedent("""
        import os, signal
        from machine import entry, fastpath

        def run(argv):
            class Descriptor:
                def __set_name__(self, owner, name):
                    os.kill(os.getpid(), signal.SIGTERM)
            class Owner:
                field = Descriptor()
            return True

        fastpath.run = run
        entry.main(["ls"])
    """)
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(store_root)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc
    assert proc.stderr == "Interrupted.\n", proc.stderr
