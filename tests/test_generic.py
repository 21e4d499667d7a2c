"""The generic driver end to end against a real sshd on 127.0.0.1: create (provision over SSH), ls,
version, ssh, scp, regenerate-certs, stop refused, rm (the host is left alone).

This host must not be reconfigured, so the provisioner works under a fake root directory
(`machine.provision.remote.ROOT`): every guest path it reads or writes is below it. The fake root
holds /etc/machine-os-release, so the machine-OS provisioner runs - the one whose actions are only
file writes and a process signal. `FakeMachineOS` plays the OS's part of the engine protocol: once
/etc/docker/machine-ready appears it starts an "engine" (a mutual-TLS server using the uploaded
server certificate, on the engine port) with a pid file, and respawns it when that process is killed
(as the OS's init does), reading the certificate files again.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes.tlsengine import FakeEngine
from test_ssh import SSHServer, free_port, sshd  # noqa: F401 - the fixture

from machine import waiting
from machine.cli import cli
from machine.driver import DriverContext, State
from machine.provision import remote as remote_mod
from machine.store import Store


class FakeMachineOS:
    def __init__(self, root: Path, engine_port: int) -> None:
        self.root = root
        self.port = engine_port
        self.starts = 0
        self.stopped = threading.Event()
        self.engine: FakeEngine | None = None
        self.proc: subprocess.Popen | None = None
        for d in ("etc/docker", "var/run", "usr/bin"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "etc/machine-os-release").write_text("VERSION=0.1\nBUILD_ID=test\n")
        (root / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\n")  # the OS is built from Debian
        dockerd = root / "usr/bin/dockerd"
        dockerd.write_text("#!/bin/sh\n")
        dockerd.chmod(0o755)
        threading.Thread(target=self._init, daemon=True).start()

    def _init(self) -> None:
        etc = self.root / "etc/docker"
        while not (etc / "machine-ready").exists():
            if self.stopped.wait(0.05):
                return
        while not self.stopped.is_set():
            conf = json.loads((etc / "daemon.json").read_text())
            assert f"tcp://0.0.0.0:{self.port}" in conf["hosts"] and conf["tlsverify"] is True
            self.engine = FakeEngine(etc / "server.pem", etc / "server-key.pem", etc / "ca.pem", port=self.port)
            self.proc = subprocess.Popen(["sleep", "600"])
            self.starts += 1
            (self.root / "var/run/docker.pid").write_text(f"{self.proc.pid}\n")
            while self.proc.poll() is None and not self.stopped.is_set():
                time.sleep(0.05)
            (self.root / "var/run/docker.pid").unlink(missing_ok=True)
            self.engine.close()

    def close(self) -> None:
        self.stopped.set()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()


def served_cert(port: int) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="x") as tls:
                return tls.getpeercert(binary_form=True) or b""
        except ssl.SSLError:  # the server wants a client certificate; we only need its own
            return b""


@pytest.fixture
def fake_os(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "guest-root"
    fos = FakeMachineOS(root, free_port())
    monkeypatch.setattr(remote_mod, "ROOT", str(root))
    yield fos
    fos.close()


def machine(*args: str) -> tuple[int, str]:
    """Run the CLI in-process (so the fake root applies); a MachineError is shown as `machine` shows it."""
    from machine.errors import MachineError

    res = CliRunner().invoke(cli, list(args))
    if isinstance(res.exception, MachineError):
        return res.exception.exit_code, f"{res.output}Error: {res.exception.message}\nHint: {res.exception.hint}\n"
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


def create_generic(sshd: SSHServer, fake_os: FakeMachineOS, name: str, *extra: str) -> tuple[int, str]:  # noqa: F811
    """`machine create -d generic` of the test sshd and fake OS engine as machine `name`."""
    return machine("create", "-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-port",
                   str(sshd.port), "--generic-ssh-key", str(sshd.client_key), "--generic-engine-port",
                   str(fake_os.port), *extra, name)


def test_generic_create_ls_version_ssh_scp_regenerate_rm(store_root: Path, sshd: SSHServer,  # noqa: F811
                                                          fake_os: FakeMachineOS, tmp_path: Path,
                                                          capfd: pytest.CaptureFixture) -> None:

    code, out = create_generic(sshd, fake_os, "box", "--engine-label", "site=lab",
                               "--engine-env", "HTTPS_PROXY=http://proxy:3128")
    assert code == 0, out
    assert "Docker is up and running!" in out
    assert "Pinned the SSH host key" in out
    # this OS build (a fake root without /etc/machine-os/engine.run) does not read engine.env: said so
    assert "does not read /etc/docker/engine.env" in out
    assert "HTTPS_PROXY=http://proxy:3128" in (fake_os.root / "etc/docker/engine.env").read_text()
    for step in ("Connecting to 'box' over SSH... done", "Detecting the operating system... done",
                 "Configuring the Docker engine... done", "Waiting for the Docker engine... done"):
        assert step in out
    store = Store(store_root)
    cfg = store.load("box")
    assert cfg.engine["url"] == f"tcp://127.0.0.1:{fake_os.port}"
    assert cfg.ssh["host_key"] == sshd.host_key and cfg.ssh["os"] == "machine-os"
    mdir = store.machine_dir("box")
    assert (mdir / "id_ssh").read_bytes() == sshd.client_key.read_bytes()
    assert (mdir / "id_ssh").stat().st_mode & 0o777 == 0o600
    etc = fake_os.root / "etc/docker"
    assert json.loads((etc / "daemon.json").read_text())["labels"] == ["site=lab", "provider=generic"]
    assert (etc / "server-key.pem").stat().st_mode & 0o777 == 0o600
    assert (etc / "server.pem").read_bytes() == (mdir / "server.pem").read_bytes()
    assert fake_os.starts == 1

    # provisioning again finds the engine configured: nothing uploaded, no restart
    code, out = machine("provision", "box")
    assert code == 0 and "Docker is up and running!" in out and fake_os.starts == 1, out
    code, out = machine("upgrade", "box")
    assert code == 1 and "upgraded with the OS image" in out

    code, out = machine("ls")
    assert code == 0 and "box" in out and "generic" in out and "Running" in out and "v99.1.0" in out, out
    code, out = machine("version", "box")
    assert (code, out.strip()) == (0, "99.1.0")
    code, out = machine("status", "box")
    assert out.strip() == "Running"

    # ssh through the system client, the host key checked against the pin
    capfd.readouterr()
    code, _ = machine("ssh", "box", "echo", "hello from", "$((6*7))")
    assert code == 0 and capfd.readouterr().out == "hello from 42\n"
    assert (mdir / "known_hosts").read_text().split()[1:] == sshd.host_key.split()
    code, _ = machine("ssh", "box", "exit 5")
    assert code == 5
    code, out = machine("ssh", "--native", "box", "echo native")
    assert code == 0 and out == "native\n"

    # scp both ways, recursive
    src = tmp_path / "up"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.sh").write_text("B")
    (src / "sub" / "b.sh").chmod(0o750)
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    code, out = machine("scp", "-r", str(src), f"box:{remote_dir}")
    assert code == 0 and "Copied 2 file(s)" in out, out
    assert (remote_dir / "up" / "sub" / "b.sh").read_text() == "B"
    assert (remote_dir / "up" / "sub" / "b.sh").stat().st_mode & 0o777 == 0o750
    back = tmp_path / "back.txt"
    code, out = machine("scp", f"box:{remote_dir}/up/a.txt", str(back))
    assert code == 0 and back.read_text() == "A"
    code, out = machine("scp", str(src), f"box:{remote_dir}/x")
    assert code != 0 and "Use -r" in out
    code, out = machine("scp", "a", "b")
    assert code == 2 and "MACHINE:PATH" in out

    # regenerate-certs: new server cert uploaded, engine restarted (respawned), served, TLS still verifies
    old_cert = (mdir / "server.pem").read_bytes()
    code, out = machine("regenerate-certs", "-f", "box")
    assert code == 0 and "Docker is up and running!" in out, out
    new_cert = (mdir / "server.pem").read_bytes()
    assert new_cert != old_cert and (etc / "server.pem").read_bytes() == new_cert
    assert fake_os.starts == 2
    code, out = machine("version", "box")
    assert (code, out.strip()) == (0, "99.1.0")
    assert served_cert(fake_os.port) in (b"", ssl.PEM_cert_to_DER_cert(new_cert.decode()))

    # --client-certs: a new CA; the machine gets it with its new server certificate and still answers
    old_ca = (store_root / "certs" / "ca.pem").read_bytes()
    code, out = machine("regenerate-certs", "-f", "--client-certs", "box")
    assert code == 0 and "Making a new CA and client certificate... done" in out, out
    new_ca = (store_root / "certs" / "ca.pem").read_bytes()
    assert new_ca != old_ca and (etc / "ca.pem").read_bytes() == new_ca == (mdir / "ca.pem").read_bytes()
    assert fake_os.starts == 3
    code, out = machine("version", "box")
    assert (code, out.strip()) == (0, "99.1.0")

    # the host's power is not ours
    code, out = machine("stop", "box")
    assert code == 1 and "cannot be stopped" in out

    code, out = machine("rm", "-y", "box")
    assert code == 0 and "Successfully removed box" in out, out
    assert not mdir.exists()
    assert waiting.ssh_banner("127.0.0.1", sshd.port)  # the host itself is untouched
    assert (etc / "daemon.json").exists()


def test_generic_refuses_a_changed_host_key(store_root: Path, sshd: SSHServer, fake_os: FakeMachineOS,  # noqa: F811
                                            capfd: pytest.CaptureFixture) -> None:

    code, out = create_generic(sshd, fake_os, "pinned")
    assert code == 0, out
    store = Store(store_root)
    cfg = store.load("pinned")
    from machine.provision import keys

    cfg.ssh["host_key"] = " ".join(keys.new_ed25519("other").public.split()[:2])
    store.save(cfg)
    for cmd in (["provision", "pinned"], ["regenerate-certs", "-f", "pinned"], ["ssh", "--native", "pinned", "id"]):
        code, out = machine(*cmd)
        assert code == 1 and "does not match the pinned key" in out and "NOT accepted" in out
    # the system ssh client is held to the same pin
    capfd.readouterr()
    code, _ = machine("ssh", "pinned", "id")
    assert code == 255 and "Host key verification failed" in capfd.readouterr().err
    assert store.load("pinned").ssh["host_key"] == cfg.ssh["host_key"]  # never replaced silently


@pytest.mark.parametrize("command", [["env", "stale"], ["ls"], ["use", "stale"]])
def test_a_certificate_that_misses_the_address_is_renewed_by_env_ls_and_use(
        store_root: Path, sshd: SSHServer, fake_os: FakeMachineOS, command: list[str]) -> None:  # noqa: F811
    """The server certificate no longer names the address the engine is reached at (as after the host's
    address changed): env, ls and use re-issue it, upload it and restart the engine by themselves, tell
    the user once, and the engine answers through TLS with the new certificate."""
    code, out = create_generic(sshd, fake_os, "stale")
    assert code == 0, out
    store = Store(store_root)
    cfg = store.load("stale")
    # the certificate on record was issued for another address (the trigger; what follows is all real)
    cfg.engine["cert_sans"] = {"ips": ["192.0.2.7"], "dns": ["localhost", "stale"]}
    store.save(cfg)
    old_cert = (store.machine_dir("stale") / "server.pem").read_bytes()
    assert fake_os.starts == 1

    code, out = machine(*command)
    assert code == 0, out
    assert out.count("its server certificate was re-issued") == 1, out
    assert "does not cover" not in out  # renewed, so no warning is left
    new_cert = (store.machine_dir("stale") / "server.pem").read_bytes()
    assert new_cert != old_cert and (fake_os.root / "etc/docker/server.pem").read_bytes() == new_cert
    assert fake_os.starts == 2  # the engine restarted with it
    assert "127.0.0.1" in store.load("stale").engine["cert_sans"]["ips"]
    code, out = machine("version", "stale")
    assert (code, out.strip()) == (0, "99.1.0")
    code, out = machine(*command)  # nothing left to do the second time
    assert code == 0 and "re-issued" not in out and fake_os.starts == 2, out


def test_generic_create_with_a_key_the_host_refuses_rolls_back(store_root: Path, sshd: SSHServer,  # noqa: F811
                                                               tmp_path: Path) -> None:
    from machine.provision import keys

    keys.write_keypair(tmp_path / "stranger", keys.new_ed25519("x"))
    start = time.monotonic()
    code, out = machine("create", "-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-port",
                        str(sshd.port), "--generic-ssh-key", str(tmp_path / "stranger"), "nokey")
    assert code == 1 and "authentication" in out
    assert time.monotonic() - start < 20
    assert not Store(store_root).machine_dir("nokey").exists()


def test_generic_driver_state_and_refusals(tmp_path: Path) -> None:
    from machine.drivers.generic import DRIVER

    from machine.errors import DriverError, UsageError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    d = DRIVER(DriverContext("g", tmp_path, {"ip_address": "127.0.0.1", "ssh_port": closed, "ssh_user": "root",
                                             "engine_port": 2376}))
    assert d.status() == State.ERROR
    assert d.unexpected_exit().startswith(f"no SSH answer from 127.0.0.1:{closed}")
    assert d.engine_address(3376) == ("127.0.0.1", 3376)
    for action in (d.start, d.stop, lambda: d.stop(force=True)):
        with pytest.raises(DriverError):
            action()
    with pytest.raises(UsageError, match="--generic-ip-address"):
        DRIVER(DriverContext("g", tmp_path, {})).create()
    with pytest.raises(UsageError, match="not found"):
        DRIVER(DriverContext("g", tmp_path, {"ip_address": "h", "ssh_key": str(tmp_path / "nope")})).create()
    assert os.listdir(tmp_path) == []
