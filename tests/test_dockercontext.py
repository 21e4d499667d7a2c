"""`machine use` and machine.client.dockercontext, checked by reading the result back with the real docker CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from machine.cli import cli
from machine.client import dockercontext
from machine.errors import MachineError
from machine.store import Store

DOCKER = "/usr/local/bin/docker"
needs_docker = pytest.mark.skipif(not os.access(DOCKER, os.X_OK), reason=f"{DOCKER} (docker CLI) not installed")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if isinstance(result.exception, MachineError):
        return result.exception.exit_code, result.stdout, str(result.exception)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env, check=check, timeout=30)


def docker_config() -> Path:
    return Path(os.environ["DOCKER_CONFIG"])


def config_json() -> dict:
    path = docker_config() / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def make_machine(store_root: Path, name: str, port: int = 2376, certs: bool = True) -> Path:
    code, _, err = run("create", "-d", "none", "--url", f"tcp://127.0.0.1:{port}", name)
    assert code == 0, err
    store = Store(store_root)
    for pem in ("ca.pem", "cert.pem", "key.pem"):  # create gives every TLS machine its client certs
        assert (store.machine_dir(name) / pem).is_file()
    if not certs:  # a machine whose certificates went missing
        for pem in ("ca.pem", "cert.pem", "key.pem"):
            (store.machine_dir(name) / pem).unlink()
    return store.machine_dir(name)


@pytest.fixture
def two(store_root: Path) -> Path:
    make_machine(store_root, "dev", 2376)
    make_machine(store_root, "prod", 2377)
    return store_root


def user_context(name: str) -> None:
    """A context the user made with the docker CLI (not ours)."""
    docker("context", "create", name, "--docker", "host=tcp://127.0.0.1:1")


# -- real docker CLI reads what we write ----------------------------------------------------------


@needs_docker
def test_use_creates_a_context_the_docker_cli_reads(two: Path) -> None:
    code, out, err = run("use", "dev")
    assert code == 0, err
    assert "'dev'" in out
    [ctx] = json.loads(docker("context", "inspect", "dev").stdout)
    assert ctx["Endpoints"]["docker"] == {"Host": "tcp://127.0.0.1:2376", "SkipTLSVerify": False}
    assert ctx["Metadata"]["Description"] == "machine dev (none)"
    assert ctx["TLSMaterial"] == {"docker": ["ca.pem", "cert.pem", "key.pem"]}
    tls = Path(ctx["Storage"]["TLSPath"]) / "docker"
    machine_dir = two / "machines" / "dev"
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert (tls / name).read_bytes() == (machine_dir / name).read_bytes()
    assert docker("context", "show").stdout.strip() == "dev"
    assert dockercontext.current_machine() == "dev"


@needs_docker
def test_use_keeps_other_config_keys_and_unset_restores_previous(two: Path) -> None:
    user_context("mine")
    docker("context", "use", "mine")
    path = docker_config() / "config.json"
    data = json.loads(path.read_text())
    data.update({"psFormat": "table {{.ID}}", "auths": {"registry.example": {"auth": "eDp5"}}})
    path.write_text(json.dumps(data))

    assert run("use", "dev")[0] == 0
    after = config_json()
    assert after["currentContext"] == "dev"
    assert after["psFormat"] == "table {{.ID}}" and after["auths"] == {"registry.example": {"auth": "eDp5"}}

    code, out, _ = run("use", "--unset")
    assert code == 0 and "'mine'" in out
    assert docker("context", "show").stdout.strip() == "mine"
    assert config_json() == {**data, "currentContext": "mine"}
    assert dockercontext.current_machine() is None


@needs_docker
def test_unset_without_previous_context_removes_current_context(two: Path) -> None:
    assert not (docker_config() / "config.json").exists()
    assert run("use", "dev")[0] == 0
    assert run("use", "--unset")[0] == 0
    assert "currentContext" not in config_json()
    assert docker("context", "show").stdout.strip() == "default"


@needs_docker
def test_switching_machines_then_unset_returns_to_the_users_context(two: Path) -> None:
    user_context("mine")
    docker("context", "use", "mine")
    assert run("use", "dev")[0] == 0
    assert run("use", "prod")[0] == 0
    assert docker("context", "show").stdout.strip() == "prod"
    assert run("use", "--unset")[0] == 0
    assert docker("context", "show").stdout.strip() == "mine"


@needs_docker
def test_rm_forgets_the_current_machines_context_and_restores_previous(two: Path) -> None:
    user_context("mine")
    docker("context", "use", "mine")
    assert run("use", "dev")[0] == 0
    assert run("rm", "-y", "dev")[0] == 0
    names = [c["Name"] for c in map(json.loads, docker("context", "ls", "--format", "json").stdout.splitlines())]
    assert "dev" not in names and "mine" in names
    assert docker("context", "show").stdout.strip() == "mine"
    assert not dockercontext.meta_dir("dev").exists() and not dockercontext.tls_dir("dev").exists()


@needs_docker
def test_forget_machine_of_a_non_current_machine_leaves_current_alone(two: Path) -> None:
    assert run("use", "dev")[0] == 0
    assert run("use", "prod")[0] == 0
    switch = dockercontext.forget_machine("dev", two)
    assert switch is None
    assert docker("context", "show").stdout.strip() == "prod"
    assert docker("context", "inspect", "dev", check=False).returncode != 0


@needs_docker
def test_a_users_context_with_the_machines_name_is_not_touched(two: Path) -> None:
    user_context("dev")
    before = docker("context", "inspect", "dev").stdout
    code, _, err = run("use", "dev")
    assert code == 1 and "already exists" in err
    assert docker("context", "inspect", "dev").stdout == before
    assert dockercontext.forget_machine("dev", two) is None
    assert docker("context", "inspect", "dev").stdout == before


@needs_docker
def test_names_the_docker_cli_refuses_get_a_prefix(store_root: Path) -> None:
    make_machine(store_root, "default")
    make_machine(store_root, "a", 2377)
    assert run("use", "default")[0] == 0
    assert docker("context", "show").stdout.strip() == "machine-default"
    assert dockercontext.current_machine() == "default"
    docker("context", "use", "default")  # the docker CLI's own default context is still there
    docker("context", "use", "machine-default")
    assert run("use", "a")[0] == 0
    [ctx] = json.loads(docker("context", "inspect", "machine-a").stdout)
    assert ctx["Endpoints"]["docker"]["Host"] == "tcp://127.0.0.1:2377"


@needs_docker
def test_ssh_transport_context_has_no_tls_material(store_root: Path) -> None:
    make_machine(store_root, "remote", certs=False)
    store = Store(store_root)
    cfg = store.load("remote")
    cfg.engine.update(transport="ssh", url="ssh://root@127.0.0.1:2222")
    store.save(cfg)
    assert run("use", "remote")[0] == 0
    [ctx] = json.loads(docker("context", "inspect", "remote").stdout)
    assert ctx["Endpoints"]["docker"]["Host"] == "ssh://root@127.0.0.1:2222"
    assert ctx["TLSMaterial"] == {}


@needs_docker
def test_docker_context_env_overrides_config(two: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("use", "dev")[0] == 0
    assert run("use", "prod")[0] == 0
    monkeypatch.setenv("DOCKER_CONTEXT", "dev")
    assert dockercontext.current_machine() == "dev"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # DOCKER_HOST wins over any context
    assert dockercontext.current_machine() is None


# -- errors -------------------------------------------------------------------------------------


def test_missing_client_certificates_are_an_error(store_root: Path) -> None:
    make_machine(store_root, "bare", certs=False)
    code, _, err = run("use", "bare")
    assert code == 1 and "no client certificates" in err
    assert not dockercontext.meta_dir("bare").exists()


def test_corrupt_config_json_is_not_overwritten(two: Path) -> None:
    path = docker_config() / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    code, _, err = run("use", "dev")
    assert code == 2 and "not valid JSON" in err
    assert path.read_text() == "{not json"
    assert dockercontext.current_machine() is None


def test_config_json_symlink_is_written_through(two: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "docker-config.json"
    real.parent.mkdir()
    real.write_text(json.dumps({"detachKeys": "ctrl-e,e"}))
    docker_config().mkdir(parents=True, exist_ok=True)
    (docker_config() / "config.json").symlink_to(real)
    assert run("use", "dev")[0] == 0
    assert (docker_config() / "config.json").is_symlink()
    assert json.loads(real.read_text()) == {"detachKeys": "ctrl-e,e", "currentContext": "dev"}


def test_unset_name_is_a_usage_error(two: Path) -> None:
    assert run("use", "--unset", "dev")[0] == 2


@needs_docker
def test_refresh_rewrites_only_existing_machine_contexts(two: Path) -> None:
    machine_dir = two / "machines" / "dev"
    assert dockercontext.refresh("dev", "tcp://127.0.0.1:4000", machine_dir, "machine dev (none)") is False
    assert docker("context", "inspect", "dev", check=False).returncode != 0
    assert run("use", "dev")[0] == 0
    assert dockercontext.refresh("dev", "tcp://127.0.0.1:4000", machine_dir, "machine dev (none)") is True
    [ctx] = json.loads(docker("context", "inspect", "dev").stdout)
    assert ctx["Endpoints"]["docker"]["Host"] == "tcp://127.0.0.1:4000"
    assert docker("context", "show").stdout.strip() == "dev"
