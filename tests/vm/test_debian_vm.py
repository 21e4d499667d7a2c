"""A real Debian 12 guest WITHOUT Docker (systemd, no machine OS, no network: qemu user-net restrict=on)
gets the engine through the generic driver from an offline package bundle (`--engine-archive`), then the
checks of the machine-OS test: docker version and docker run of an imported image through TLS with
`machine env`, engine options in `docker info`, a client without our certificate refused, the systemd
drop-in without -H fd://, regenerate-certs, rm leaving the host running. A second `machine create` on the
same guest (engine present now) takes the configure-only path; `machine use` then works with plain docker.

The guest and its bundle are built once by `python3 -m tests.vm.debian_guest` (root, mmdebstrap,
deb.debian.org; .ci/setup does it) and cached under ~/.cache/machine/test-debian/<recipe hash>/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.vm import debian_guest
from tests.vm.vmhelpers import BUSYBOX, check_engine, docker, docker_env, machine

pytestmark = [pytest.mark.vm, pytest.mark.slow]

DROPIN = "/etc/systemd/system/docker.service.d/10-machine.conf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skip_reason() -> str | None:
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed"
    if not shutil.which("docker"):
        return "the docker CLI is not installed"
    if debian_guest.built_dir() is None:
        return (f"the Debian test guest (recipe {debian_guest.recipe_hash()}) is not built in "
                f"{debian_guest.cache_root()}: run `python3 -m tests.vm.debian_guest` as root (or .ci/setup)")
    return None


def _boot(d: Path, log: Path, ssh_port: int, engine_port: int) -> subprocess.Popen:
    return subprocess.Popen([
        "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,tb-size=128", "-m", "1024", "-smp", "2",
        "-nodefaults", "-no-user-config", "-display", "none", "-serial", f"file:{log}",
        "-kernel", str(d / "vmlinuz"), "-initrd", str(d / "initrd.img"), "-append", "root=/dev/vda rw console=ttyS0",
        "-drive", f"file={d / 'disk.img'},if=virtio,format=raw,snapshot=on",
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22,"
                   f"hostfwd=tcp:127.0.0.1:{engine_port}-:{engine_port}",
        "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"])


def test_debian_guest_without_docker_gets_the_engine_offline(store_root: Path, tmp_path: Path) -> None:
    from machine import waiting

    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    d = debian_guest.built_dir()
    assert d is not None
    bundle = d / "bundle"
    ssh_port, engine_port = _free_port(), _free_port()
    env = dict(os.environ)
    generic = ["-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-port", str(ssh_port),
               "--generic-ssh-key", str(d / "client"), "--generic-engine-port", str(engine_port)]
    times: dict[str, float] = {}
    t0 = time.monotonic()
    qemu = _boot(d, tmp_path / "serial.log", ssh_port, engine_port)
    try:
        waiting.until(lambda: waiting.ssh_banner("127.0.0.1", ssh_port), timeout=300, what="the Debian guest's sshd",
                      interval=1, failed=lambda: "qemu exited" if qemu.poll() is not None else None)
        times["boot_to_ssh_s"] = time.monotonic() - t0

        # 1. no engine on the guest: create installs it from the bundle, offline
        t = time.monotonic()
        res = machine("create", *generic, "--engine-archive", str(bundle),
                      "--engine-env", "HTTP_PROXY=http://proxy.invalid:3128", "--engine-label", "lab=deb",
                      "--engine-insecure-registry", "registry.invalid:5000", "--engine-storage-driver", "vfs",
                      "deb", env=env, timeout=1200)
        times["create_with_install_s"] = time.monotonic() - t
        print(res.stderr)  # the progress lines, with the time of each step
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Installing the Docker engine (debian)... done" in res.stderr, res.stderr
        assert "Docker is up and running!" in res.stderr and "AppArmor" not in res.stderr
        cfg = json.loads((store_root / "machines/deb/config.json").read_text())
        assert cfg["engine"]["archive"] == str(bundle) and cfg["ssh"]["os"] == "debian"

        denv = docker_env("deb", env)
        ver = docker("version", "--format", "{{.Server.Version}}", env=denv)
        assert ver.returncode == 0 and ver.stdout.strip().startswith("20.10."), ver.stderr  # bookworm's docker.io
        info = check_engine(denv, tmp_path, ["lab=deb", "provider=generic"], "hello debian")
        assert info["HttpProxy"] == "http://proxy.invalid:3128"  # --engine-env reached dockerd

        guest = machine("ssh", "deb", f"cat {DROPIN}; systemctl is-active docker.service; "
                        "dpkg-query -W -f='${Status}\\n' docker.io; "
                        'for p in /tmp/machine-engine-* /usr/sbin/policy-rc.d; do [ -e "$p" ] && echo "left: $p"; done;'
                        " ls /var/lib/apt/lists", env=env).stdout
        assert "ExecStart=\nExecStart=/usr/sbin/dockerd" in guest and "fd://" not in guest.split("[Service]")[1]
        assert 'Environment="HTTP_PROXY=http://proxy.invalid:3128"' in guest and "\nactive\n" in guest
        assert "install ok installed" in guest
        assert "left:" not in guest, guest  # uploaded packages and the temporary policy-rc.d are gone
        assert "_Packages" not in guest  # no package lists: nothing could have come from a mirror

        t = time.monotonic()
        res = machine("regenerate-certs", "-f", "deb", env=env, timeout=600)
        times["regenerate_certs_s"] = time.monotonic() - t
        assert res.returncode == 0 and "Docker is up and running!" in res.stderr, res.stderr
        assert docker("version", "--format", "{{.Server.Version}}", env=docker_env("deb", env)).returncode == 0
        res = machine("rm", "-y", "deb", env=env)
        assert res.returncode == 0, res.stderr
        assert waiting.ssh_banner("127.0.0.1", ssh_port)  # the host is left running

        # 2. the same guest again: the engine is there now, so create only configures it
        t = time.monotonic()
        res = machine("create", *generic, "--engine-archive", str(bundle), "--engine-label", "lab=again",
                      "--engine-storage-driver", "vfs", "deb2",
                      env=env, timeout=900)
        times["create_configure_only_s"] = time.monotonic() - t
        print(res.stderr)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Installing" not in res.stderr and "Docker is up and running!" in res.stderr, res.stderr
        denv = docker_env("deb2", env)
        info = json.loads(docker("info", "--format", "{{json .}}", env=denv).stdout)
        assert sorted(info["Labels"]) == ["lab=again", "provider=generic"] and info["HttpProxy"] == ""
        if os.path.exists(BUSYBOX):  # the image imported by the first machine is still in the engine
            run = docker("run", "--rm", "busybox:machine-test", "/bin/sh", "-c", "echo again", env=denv)
            assert run.returncode == 0 and run.stdout.strip() == "again", run.stderr
        # `machine use`: plain docker (no DOCKER_* variables) reaches the engine through a docker context
        res = machine("use", "deb2", env=env)
        assert res.returncode == 0 and "Current docker context is now" in res.stdout, res.stderr
        ver = docker("version", "--format", "{{.Server.Version}}", env=env)
        assert ver.returncode == 0 and ver.stdout.strip().startswith("20.10."), ver.stderr
        assert machine("rm", "-y", "deb2", env=env).returncode == 0
        assert waiting.ssh_banner("127.0.0.1", ssh_port)
    finally:
        qemu.kill()
        qemu.wait(30)
        times["total_s"] = time.monotonic() - t0
        print("debian guest timings: " + ", ".join(f"{k}={v:.1f}" for k, v in times.items()))
