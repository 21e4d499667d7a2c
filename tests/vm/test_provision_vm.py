"""A real VM: `machine create -d qemu` with the machine OS and engine options, the local docker CLI
through `machine env` and through `machine use` (docker version, docker info, an imported busybox image
run with --rm), `regenerate-certs -f`, `ssh`; then the machine moves to another host address
(`machine set --qemu-host-address 127.0.0.2`, start) and its server certificate follows by itself; `rm`.

Skips when qemu or the built machine OS (MACHINE_OS_DIR, else ~/.cache/machine/machine-os/latest) is
missing. TCG only here: a create takes about a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.vm.vmhelpers import check_engine, docker, docker_env, machine, skip_reason

pytestmark = [pytest.mark.vm, pytest.mark.slow]

def test_create_docker_regenerate_rm(store_root: Path, tmp_path: Path) -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    env = dict(os.environ)
    name = f"pv-{uuid.uuid4().hex[:6]}"
    try:
        res = machine("create", "-d", "qemu", "--engine-env", "HTTP_PROXY=http://proxy.invalid:3128",
                      "--engine-label", "team=qa", "--engine-insecure-registry", "registry.invalid:5000",
                      "--engine-storage-driver", "vfs", name, env=env, timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Docker is up and running!" in res.stderr
        assert "does not read /etc/docker/engine.env" not in res.stderr
        for step in ("Preparing keys, certificates and seed... done", "Waiting for the Docker engine... done"):
            assert step in res.stderr
        cfg = json.loads((store_root / "machines" / name / "config.json").read_text())
        assert cfg["ssh"]["host_key"].startswith("ssh-ed25519 ") and cfg["ssh"]["os"] == "machine-os"

        denv = docker_env(name, env)
        ver = docker("version", "--format", "{{.Server.Version}}", env=denv)
        assert ver.returncode == 0 and ver.stdout.strip(), ver.stderr
        proxy = docker("info", "--format", "{{.HTTPProxy}}", env=denv)
        assert proxy.stdout.strip() == "http://proxy.invalid:3128", proxy.stderr  # --engine-env reached dockerd
        check_engine(denv, tmp_path, ["provider=qemu", "team=qa"], "hello from busybox")

        old_cert = (store_root / "machines" / name / "server.pem").read_bytes()
        res = machine("regenerate-certs", "-f", name, env=env)
        assert res.returncode == 0 and "Docker is up and running!" in res.stderr, res.stderr
        assert (store_root / "machines" / name / "server.pem").read_bytes() != old_cert
        ver = docker("version", "--format", "{{.Server.Version}}", env=docker_env(name, env))
        assert ver.returncode == 0, ver.stderr

        res = machine("ssh", name, "cat", "/etc/docker/daemon.json", env=env)
        assert res.returncode == 0 and json.loads(res.stdout)["tlsverify"] is True, res.stderr
        assert machine("ssh", name, "exit", "3", env=env).returncode == 3

        # `machine use`: plain docker (no DOCKER_* variables) talks to the machine through its context
        res = machine("use", name, env=env)
        assert res.returncode == 0 and "Current docker context is now" in res.stdout, res.stderr
        ver = docker("version", "--format", "{{.Server.Version}}", env=env)
        assert ver.returncode == 0 and ver.stdout.strip(), ver.stderr

        # the machine moves to another host address: the next start re-issues the server certificate,
        # uploads it and updates the URL and the docker context, with no command from the user
        assert machine("set", name, "--qemu-memory", "768", env=env).returncode != 0  # running: refused
        assert machine("stop", name, env=env, timeout=300).returncode == 0
        res = machine("set", name, "--qemu-host-address", "127.0.0.2", env=env)
        assert res.returncode == 0 and "127.0.0.1 -> 127.0.0.2" in res.stdout, res.stdout + res.stderr
        res = machine("start", name, env=env, timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "its server certificate was re-issued" in res.stderr, res.stderr
        ver = docker("version", "--format", "{{.Server.Version}}", env=env)  # the context followed
        assert ver.returncode == 0 and ver.stdout.strip(), ver.stderr
        ctx = docker("context", "inspect", "--format", "{{.Endpoints.docker.Host}}", env=env).stdout.strip()
        assert ctx.startswith("tcp://127.0.0.2:"), ctx
        moved = docker_env(name, env, host="127.0.0.2")
        ver = docker("version", "--format", "{{.Server.Version}}", env=moved)
        assert ver.returncode == 0 and ver.stdout.strip(), ver.stderr
        assert "Warning" not in machine("env", name, env=env).stderr
        res = machine("ssh", name, "true", env=env)  # SSH follows the new address too, with the pinned key
        assert res.returncode == 0, res.stderr
    finally:
        res = machine("rm", "-y", "-f", name, env=env, timeout=300)
        assert res.returncode == 0, res.stderr
    assert not (store_root / "machines" / name).exists()


def test_ssh_transport_has_no_tcp_port_and_docker_works_over_ssh(store_root: Path, tmp_path: Path) -> None:
    reason = skip_reason() or (None if shutil.which("ssh") else "no ssh client")
    if reason:
        pytest.skip(reason)
    env = dict(os.environ)
    name = f"ps-{uuid.uuid4().hex[:6]}"
    try:
        res = machine("create", "-d", "qemu", "--engine-transport", "ssh", name, env=env, timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Docker is up and running!" in res.stderr and "Include " in res.stderr
        cfg = json.loads((store_root / "machines" / name / "config.json").read_text())
        url = cfg["engine"]["url"]
        assert url.startswith("ssh://root@127.0.0.1:")
        listening = machine("ssh", name, "ss -ltnH", env=env).stdout
        assert ":2376 " not in listening and ":22 " in listening
        # the docker CLI runs the system ssh; it gets the machine's key and host key from the snippet
        # (ssh reads ~/.ssh/config from the passwd home, so a wrapper passes -F with the Include line)
        conf = tmp_path / "ssh-config"
        conf.write_text(f"Include {store_root / 'machines' / name / 'ssh_config'}\n")
        wrapper = tmp_path / "bin" / "ssh"
        wrapper.parent.mkdir()
        wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {conf} \"$@\"\n")
        wrapper.chmod(0o755)
        denv = {**env, "DOCKER_HOST": url, "PATH": f"{wrapper.parent}:{env['PATH']}"}
        denv.pop("DOCKER_TLS_VERIFY", None)
        denv.pop("DOCKER_CERT_PATH", None)
        ver = docker("version", "--format", "{{.Server.Version}}", env=denv)
        assert ver.returncode == 0 and ver.stdout.strip(), ver.stderr
    finally:
        res = machine("rm", "-y", "-f", name, env=env, timeout=300)
        assert res.returncode == 0, res.stderr
