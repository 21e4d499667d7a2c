"""`machine completion SHELL` (issue #15 point 8): the script for each shell, and what it completes when the shell
runs it: commands, options, the store's machine names (without importing a driver) and driver names.
bash is run for real (the script sourced, its function called as bash calls it on TAB)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.cli import run

HEAVY = ("machine.drivers.", "paramiko", "winrm", "cryptography", "libvirt")


@pytest.fixture
def two_machines(store_root: Path) -> dict[str, str]:
    for name in ("dev", "prod"):
        assert run("create", "-d", "none", "--url", "tcp://127.0.0.1:2376", name).code == 0
    return {**os.environ, "MACHINE_STORAGE_PATH": str(store_root)}


def complete(env: dict[str, str], words: str) -> tuple[list[str], list[str]]:
    """What click's bash protocol answers for the command line `words` (the last word being completed), and the
    heavy modules that answer imported."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    probe = ("import sys, atexit, json, os\n"
             "atexit.register(lambda: os.write(2, json.dumps(sorted(m for m in sys.modules if m.startswith("
             f"{HEAVY!r}))).encode()))\n"
             "from machine.entry import main\nmain([])\n")
    asked = {"_MACHINE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env={**env, **asked})
    assert res.returncode == 0, res
    return [line.split(",", 1)[1] for line in res.stdout.splitlines() if line], json.loads(res.stderr)


def test_machine_names_come_from_the_store_without_drivers(two_machines: dict[str, str]) -> None:
    for words in ("machine rm ", "machine env ", "machine ssh ", "machine -s {root} start "):
        names, heavy = complete(two_machines, words.format(root=two_machines["MACHINE_STORAGE_PATH"]))
        assert names == ["dev", "prod"], words
        assert heavy == [], (words, heavy)
    assert complete(two_machines, "machine url p")[0] == ["prod"]
    assert complete(two_machines, "machine create ")[0] == []  # a new name: nothing to offer


def test_commands_options_and_drivers(two_machines: dict[str, str]) -> None:
    assert complete(two_machines, "machine st")[0] == ["start", "status", "stop"]
    assert "completion" in complete(two_machines, "machine ")[0]
    assert complete(two_machines, "machine env --sh")[0] == ["--shell"]
    assert complete(two_machines, "machine env --shell fi")[0] == ["fish"]
    drivers = complete(two_machines, "machine create -d ")[0]
    assert {"none", "qemu", "libvirt", "virtualbox", "hyperv", "hyperkit", "generic"} <= set(drivers)
    assert complete(two_machines, "machine create --driver q")[0] == ["qemu"]


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F _machine_completion machine"),
                                           ("zsh", "compdef _machine_completion machine"),
                                           ("fish", "complete --no-files --command machine")])
def test_completion_prints_the_script(shell: str, marker: str) -> None:
    res = run("completion", shell)
    assert res.code == 0, res
    assert marker in res.out and f"_MACHINE_COMPLETE={shell}_complete" in res.out


def test_completion_refuses_an_unknown_shell() -> None:
    res = run("completion", "tcsh")
    assert res.code == 2 and "tcsh" in res.err


@pytest.mark.skipif(not shutil.which("bash"), reason="bash not installed")
def test_bash_completes_machine_names_with_the_script(two_machines: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "machine-completion.bash"
    script.write_text(run("completion", "bash").out)
    bin_dir = tmp_path / "bin"  # `machine` on PATH: this checkout's entry point, as the installed script runs it
    bin_dir.mkdir()
    (bin_dir / "machine").write_text(f"#!/bin/sh\nexec {sys.executable} -m machine \"$@\"\n")
    (bin_dir / "machine").chmod(0o755)
    line = ('source "$1"; COMP_WORDS=(machine env d); COMP_CWORD=2; _machine_completion machine; '
            'printf "%s\\n" "${COMPREPLY[@]}"; COMPREPLY=(); '
            'COMP_WORDS=(machine sto); COMP_CWORD=1; _machine_completion machine; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    env = {**two_machines, "PATH": f"{bin_dir}{os.pathsep}{two_machines['PATH']}"}
    res = subprocess.run(["bash", "--norc", "-c", line, "bash", str(script)], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, res
    assert res.stdout.split() == ["dev", "stop"]
