"""A docker-machine generic machine against the real test sshd on 127.0.0.1: listed Running, ssh with its
own key (system client and paramiko), its host key learnt on first contact and pinned outside its folder,
scp, env; nothing in its folder changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dockermachine_store import DockerMachineStore, tree_digest
from fakes.cli import run
from test_ssh import SSHServer, sshd  # noqa: F401 - the fixture

from machine.ls import listing
from machine.store import Store


@pytest.fixture
def dm(store_root: Path, sshd: SSHServer, monkeypatch: pytest.MonkeyPatch) -> DockerMachineStore:  # noqa: F811
    monkeypatch.setattr(listing, "active_targets", lambda: ("", None))
    store = DockerMachineStore(store_root)
    store.add("gen", "generic", {"EnginePort": 2376, "SSHKey": str(sshd.client_key)}, ip="127.0.0.1",
              ssh_user="root", ssh_port=sshd.port, ssh_key=sshd.client_key.read_bytes())
    return store


def test_ssh_scp_env_on_a_docker_machine_generic_machine(dm: DockerMachineStore, sshd: SSHServer,  # noqa: F811
                                                         capfd: pytest.CaptureFixture, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = tree_digest(dm.machines)
    [row] = json.loads(run("ls", "--format", "json").out)
    assert (row["DriverName"], row["State"], row["URL"]) == ("generic", "Running", "tcp://127.0.0.1:2376")

    capfd.readouterr()
    result = run("ssh", "gen", "echo", "hello from", "$((6*7))")  # first contact: learn and pin the host key
    assert result.code == 0, result
    assert "Pinned the SSH host key of 'gen'" in result.err
    assert capfd.readouterr().out == "hello from 42\n"
    pin = Store(dm.root).host_key_path("gen")
    assert pin.parent == dm.machines and pin.read_text().split() == sshd.host_key.split()
    assert Store(dm.root).load("gen").ssh["host_key"] == sshd.host_key
    assert run("ssh", "gen", "exit 5").code == 5
    result = run("ssh", "--native", "gen", "echo native")
    assert (result.code, result.out) == (0, "native\n")

    local = tmp_path / "up.txt"
    local.write_text("from the host")
    assert run("scp", str(local), "gen:" + str(tmp_path / "copied.txt")).code == 0
    assert (tmp_path / "copied.txt").read_text() == "from the host"

    monkeypatch.setenv("SHELL", "/bin/bash")
    env = run("env", "gen").out
    assert 'export DOCKER_HOST="tcp://127.0.0.1:2376"' in env
    assert f'export DOCKER_CERT_PATH="{dm.machines / "gen"}"' in env
    assert tree_digest(dm.machines) == before

    # a different host key is refused from now on
    pin.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOcYYHeu1lo6ZN0YPNnrD1tQ5o5yQJ7eF9dD4vB1O4kM\n")
    result = run("ssh", "--native", "gen", "true")
    assert result.code != 0 and "does not match the pinned key" in result.err
