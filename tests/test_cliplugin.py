"""`machine install-plugin`: the docker CLI finds the plugin and `docker machine ...` runs machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from machine import __version__
from machine.cli import cli
from machine.client import cliplugin
from machine.errors import UsageError

DOCKER = "/usr/local/bin/docker"
needs_docker = pytest.mark.skipif(not os.access(DOCKER, os.X_OK), reason=f"{DOCKER} (docker CLI) not installed")
pytestmark = pytest.mark.skipif(os.name == "nt", reason="the plugin is POSIX only")


def install(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["install-plugin", *args])
    code = getattr(result.exception, "exit_code", result.exit_code)
    return code, result.stdout + str(result.exception or "")


def plugin_path() -> Path:
    return Path(os.environ["DOCKER_CONFIG"]) / "cli-plugins" / "docker-machine"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=60)


def test_install_writes_an_executable_script_for_this_interpreter(store_root: Path) -> None:
    code, out = install()
    assert code == 0, out
    path = plugin_path()
    assert str(path) in out
    assert os.access(path, os.X_OK)
    assert path.read_text().splitlines()[0] == f"#!{sys.executable}"


def test_plugin_answers_metadata(store_root: Path) -> None:
    assert install()[0] == 0
    out = subprocess.run([str(plugin_path()), "docker-cli-plugin-metadata"], capture_output=True, text=True,
                         check=True).stdout
    meta = json.loads(out)
    assert meta["SchemaVersion"] == "0.1.0" and meta["Version"] == __version__
    assert meta["Vendor"] and meta["ShortDescription"]


@needs_docker
def test_docker_machine_version_runs_machine(store_root: Path) -> None:
    assert install()[0] == 0
    result = docker("machine", "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"machine version {__version__}\n"


@needs_docker
def test_docker_help_lists_the_plugin(store_root: Path) -> None:
    assert install()[0] == 0
    lines = [line for line in docker("help").stdout.splitlines() if line.strip().startswith("machine")]
    assert lines and cliplugin.METADATA["ShortDescription"] in lines[0]


@needs_docker
def test_docker_machine_passes_arguments_and_environment(store_root: Path) -> None:
    assert install()[0] == 0
    made = CliRunner().invoke(cli, ["create", "-d", "none", "--url", "tcp://127.0.0.1:2376", "web"])
    assert made.exit_code == 0, made.output
    result = docker("machine", "url", "web")
    assert (result.returncode, result.stdout) == (0, "tcp://127.0.0.1:2376\n")
    result = docker("machine", "env", "--shell", "fish", "web")
    assert 'set -gx DOCKER_HOST "tcp://127.0.0.1:2376";' in result.stdout
    result = docker("machine", "url", "nope")
    assert result.returncode == 1 and "Host does not exist" in result.stderr


def test_a_foreign_docker_machine_is_not_replaced_without_force(store_root: Path) -> None:
    path = plugin_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x7fELF real docker-machine")
    code, out = install()
    assert code == 1 and "not written by machine" in out
    assert path.read_bytes() == b"\x7fELF real docker-machine"
    assert install("--force")[0] == 0
    assert cliplugin.MARKER in path.read_text()


def test_reinstall_replaces_our_own_plugin(store_root: Path) -> None:
    assert install()[0] == 0
    assert install()[0] == 0


def test_install_into_another_directory(store_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "plugins"
    assert install("--dir", str(target))[0] == 0
    assert os.access(target / "docker-machine", os.X_OK)


def test_interpreter_path_with_spaces_uses_a_sh_launcher(tmp_path: Path) -> None:
    spaced = tmp_path / "py dir"
    spaced.mkdir()
    (spaced / "python").symlink_to(sys.executable)
    script = tmp_path / "docker-machine"
    script.write_text(cliplugin.script(str(spaced / "python")))
    script.chmod(0o755)
    assert script.read_text().startswith("#!/bin/sh\n")
    out = subprocess.run([str(script), "machine", "version"], capture_output=True, text=True, check=True).stdout
    assert out == f"machine version {__version__}\n"


def test_interpreter_path_that_cannot_be_quoted_is_refused() -> None:
    with pytest.raises(UsageError, match="Cannot write a plugin launcher"):
        cliplugin.launcher('/opt/my "py"/bin/python')
