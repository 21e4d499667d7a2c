"""The per-OS provisioners run for real over SSH, without touching this host.

A local sshd whose sessions get PATH=<shims>:... (`SetEnv`) stands in for the guest: `systemctl`,
`apt-get`, `dnf`, `apk`, `rc-service`, `rc-update` and `curl` are shims that log their arguments (and
whether daemon.json existed at that moment) and "install" dockerd into a fake root directory. Every
guest path the provisioner touches is below that root (`machine.provision.remote.ROOT`). A test
first checks that the session really resolves `apt-get` to the shim and refuses to run otherwise.
When a shim "starts" the engine, a mutual-TLS stand-in (`FakeEngine`) serves the uploaded certificate
on the engine port, so the host-side TLS check runs for real too.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile
from pathlib import Path

import pytest
from provision_guest import Guest, MovedGeneric, _check_shims_are_used, _machine, _provision

from machine import waiting
from machine.errors import MachineError
from machine.progress import Progress
from machine.provision import certs, check_certs
from machine.provision.run import after_start
from machine.store import Store

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def test_debian_installs_and_configures_systemd_engine(store_root: Path, guest: Guest,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    guest.os_release(DEBIAN)
    store, cfg, driver = _machine(store_root, guest, env=["HTTP_PROXY=http://proxy:3128"], labels=["a=b"])
    _check_shims_are_used(guest, store, cfg, driver)
    caplog.set_level(logging.DEBUG)
    out = _provision(store, cfg, driver)
    assert "Docker is up and running!" in out and "Installing the Docker engine (debian)... done" in out
    assert cfg.engine["url"] == f"tcp://127.0.0.1:{guest.port}" and cfg.ssh["os"] == "debian"
    log = guest.log()
    assert log[0].startswith("apt-get -o DPkg::Lock::Timeout=300 update")
    assert log[1].startswith("apt-get -o DPkg::Lock::Timeout=300 install -y -q docker.io apparmor")
    rest = [line for line in log if line.startswith("systemctl")]
    assert rest == [
        "systemctl show -p ExecStart --value docker.service [daemon.json:no]",
        "systemctl mask --runtime docker.socket [daemon.json:no]",  # socket activation off first
        "systemctl stop docker.socket docker.service [daemon.json:no]",
        "systemctl unmask --no-reload --runtime docker.socket [daemon.json:yes]",  # only after the config is written
        "systemctl is-enabled -q docker.service [daemon.json:yes]",
        "systemctl enable --no-reload docker.service [daemon.json:yes]",
        "systemctl daemon-reload [daemon.json:yes]",  # one reload for all of it
        "systemctl restart docker.service [daemon.json:yes]",
    ]
    dropin = (guest.root / "etc/systemd/system/docker.service.d/10-machine.conf").read_text()
    assert "ExecStart=\nExecStart=/usr/sbin/dockerd $DOCKER_OPTS\n" in dropin
    assert 'Environment="HTTP_PROXY=http://proxy:3128"' in dropin
    conf = json.loads((guest.root / "etc/docker/daemon.json").read_text())
    assert conf["hosts"] == ["unix:///var/run/docker.sock", f"tcp://0.0.0.0:{guest.port}"] and conf["tlsverify"]
    assert conf["labels"] == ["a=b", "provider=generic"]
    key = guest.root / "etc/docker/server-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_bytes() == (store.machine_dir("m") / "server-key.pem").read_bytes()
    assert guest.starts == 1
    assert "PRIVATE KEY" not in caplog.text
    assert "run: systemctl unmask --no-reload --runtime docker.socket" in caplog.text


def test_ubuntu_with_an_engine_installs_nothing(store_root: Path, guest: Guest) -> None:
    guest.os_release('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n')
    (guest.root / "etc/docker").mkdir(parents=True)
    (guest.root / "etc/docker/daemon.json").write_text('{"log-driver": "journald"}\n')
    (guest.root / "usr/bin").mkdir(parents=True)
    (guest.root / "usr/bin/dockerd").write_text("x")
    (guest.root / "usr/bin/dockerd").chmod(0o755)
    wants = guest.root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "docker.service").symlink_to("/lib/systemd/system/docker.service")  # enabled by its package
    store, cfg, driver = _machine(store_root, guest)
    _check_shims_are_used(guest, store, cfg, driver)
    out = _provision(store, cfg, driver)
    assert "Installing" not in out and "Docker is up and running!" in out
    assert not [x for x in guest.log() if x.startswith("apt-get")]
    assert not [x for x in guest.log() if x.startswith("systemctl enable")]  # enabled already: no sysv sync
    # the host's own daemon.json is kept once, not overwritten by later runs
    backup = guest.root / "etc/docker/daemon.json.before-machine"
    assert backup.read_text() == '{"log-driver": "journald"}\n'
    _provision(store, cfg, driver)
    assert backup.read_text() == '{"log-driver": "journald"}\n'


@pytest.mark.parametrize("release,expect", [
    ('ID=fedora\nVERSION_ID=40\n', ["dnf install -y moby-engine"]),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n',
     ["dnf install -y dnf-plugins-core", "dnf config-manager --add-repo https://download.docker.com/linux/centos/"
      "docker-ce.repo", "dnf install -y docker-ce docker-ce-cli containerd.io"]),
])
def test_fedora_and_rhel_family(store_root: Path, guest: Guest, release: str, expect: list[str]) -> None:
    guest.os_release(release)
    store, cfg, driver = _machine(store_root, guest)
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    dnf = [x.split(" [")[0] for x in guest.log() if x.startswith("dnf")]
    assert dnf == expect
    assert (guest.root / "etc/systemd/system/docker.service.d/10-machine.conf").exists()


def test_alpine_uses_openrc(store_root: Path, guest: Guest) -> None:
    guest.os_release("ID=alpine\nVERSION_ID=3.20.0\n")
    (guest.root / "etc/conf.d").mkdir(parents=True)
    (guest.root / "etc/conf.d/docker").write_text('DOCKER_OPTS=""\n')
    store, cfg, driver = _machine(store_root, guest, env=["NO_PROXY=.local"])
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    log = [x.split(" [")[0] for x in guest.log()]
    assert log == ["apk add --no-cache docker", "rc-update add docker default", "rc-service docker restart"]
    conf = (guest.root / "etc/conf.d/docker").read_text()
    assert conf.startswith('DOCKER_OPTS=""\n') and "export NO_PROXY=.local\n" in conf
    _provision(store, cfg, driver)  # again: the managed block is replaced, not repeated
    assert (guest.root / "etc/conf.d/docker").read_text().count("# BEGIN machine") == 1


def test_install_script_url(store_root: Path, guest: Guest) -> None:
    guest.os_release(DEBIAN)
    store, cfg, driver = _machine(store_root, guest, install_url="https://get.docker.com")
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    assert any(x.startswith("curl -fsSL https://get.docker.com -o ") for x in guest.log())
    assert not [x for x in guest.log() if x.startswith("apt-get")]
    assert (guest.root / "usr/bin/dockerd").exists() and not (guest.root / "tmp/install-docker.sh").exists()


def test_engine_archive_from_the_local_cache(store_root: Path, guest: Guest, tmp_path: Path) -> None:
    guest.os_release(DEBIAN)
    store = Store(store_root)
    tgz = store.cache_dir / "engine" / "docker-27.0.1-x86_64.tgz"
    tgz.parent.mkdir(parents=True)
    src = tmp_path / "docker"
    src.mkdir()
    (src / "dockerd").write_text("#!/bin/sh\n")
    (src / "dockerd").chmod(0o755)
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src, arcname="docker")
    store, cfg, driver = _machine(store_root, guest, version="27.0.1")
    _check_shims_are_used(guest, store, cfg, driver)
    if shutil.which("uname") is None:
        pytest.skip("no uname")
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    assert (guest.root / "usr/local/bin/dockerd").stat().st_mode & 0o111
    unit = (guest.root / "etc/systemd/system/docker.service").read_text()
    assert "ExecStart=/usr/local/bin/dockerd" in unit
    assert not [x for x in guest.log() if x.startswith("apt-get")]
    assert not (guest.root / "tmp/docker-engine.tgz").exists()


def test_unsupported_os_fails_clearly(store_root: Path, guest: Guest) -> None:
    guest.os_release('ID=arch\nPRETTY_NAME="Arch Linux"\n')
    store, cfg, driver = _machine(store_root, guest)
    with pytest.raises(MachineError, match="Arch Linux"):
        _provision(store, cfg, driver)
    assert guest.log() == []


def test_after_start_reissues_for_a_new_address(store_root: Path, guest: Guest) -> None:
    guest.os_release(DEBIAN)
    store, cfg, driver = _machine(store_root, guest)
    _check_shims_are_used(guest, store, cfg, driver)
    _provision(store, cfg, driver)
    assert guest.starts == 1
    moved = MovedGeneric(driver.ctx)
    assert "does not cover 127.0.0.2" in (check_certs(store, cfg, moved) or "")
    out = io.StringIO()
    after_start(store, cfg, moved, Progress(stream=out))
    assert "server certificate was re-issued" in out.getvalue()
    ips, _ = certs.server_cert_sans(guest.root / "etc/docker/server.pem")
    assert "127.0.0.2" in ips and "127.0.0.1" in ips
    assert check_certs(store, cfg, moved) is None
    assert guest.log()[-1].startswith("systemctl restart docker.service")
    # nothing changed: nothing is done
    before = len(guest.log())
    after_start(store, cfg, moved, Progress(stream=io.StringIO()))
    assert len(guest.log()) == before


def test_upgrade_on_debian(store_root: Path, guest: Guest) -> None:
    from machine.provision.run import upgrade

    guest.os_release(DEBIAN)
    store, cfg, driver = _machine(store_root, guest)
    _check_shims_are_used(guest, store, cfg, driver)
    _provision(store, cfg, driver)
    out = io.StringIO()
    upgrade(store, cfg, driver, Progress(stream=out))
    assert "Upgrading the Docker engine (debian)... done" in out.getvalue()
    assert any("install -y -q --only-upgrade docker.io" in x for x in guest.log())
    assert guest.log()[-1].startswith("systemctl restart docker.service")
    waiting.until(lambda: guest.starts == 2, timeout=15, what="the engine restart")
