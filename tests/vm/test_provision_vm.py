"""A real VM: `machine create -d qemu` with the machine OS, the local docker CLI through `machine env`
(docker version, an imported busybox image run with --rm), `regenerate-certs -f`, `ssh`, `rm`.

Skips when qemu or the built machine OS (MACHINE_OS_DIR, else ~/.cache/machine/machine-os/latest) is
missing. TCG only here: a create takes about a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.rootfs import write_busybox_rootfs
from machine.images import machine_os_dir

pytestmark = [pytest.mark.vm, pytest.mark.slow]

BUSYBOX = "/bin/busybox"


def _skip_reason() -> str | None:
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed"
    d = machine_os_dir()
    if not ((d / "vmlinuz").is_file() and (d / "initrd.img").is_file()):
        return f"the machine OS is not built in {d} (python3 isos/build.py, or set MACHINE_OS_DIR)"
    if not shutil.which("docker"):
        return "the docker CLI is not installed"
    return None


def machine(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "machine", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def docker_env(name: str, env: dict[str, str]) -> dict[str, str]:
    res = machine("env", name, env=env)
    assert res.returncode == 0, res.stderr
    out = dict(env)
    for line in res.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            out[key] = value.strip('"')
    assert out["DOCKER_TLS_VERIFY"] == "1" and out["DOCKER_HOST"].startswith("tcp://127.0.0.1:")
    return out


def docker(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)


def busybox_tar(path: Path) -> Path:
    return write_busybox_rootfs(path, ("sh", "echo", "cat", "uname"))


def test_create_docker_regenerate_rm(store_root: Path, tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    env = dict(os.environ)
    name = f"pv-{uuid.uuid4().hex[:6]}"
    try:
        res = machine("create", "-d", "qemu", "--engine-env", "HTTP_PROXY=http://proxy.invalid:3128", name,
                      env=env, timeout=900)
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
        # without the client certificate the engine refuses (tlsverify)
        bare = {k: v for k, v in denv.items() if k not in ("DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")}
        bare["DOCKER_CONFIG"] = str(tmp_path / "empty-docker-config")
        assert docker("version", "--format", "{{.Server.Version}}", env=bare, timeout=60).returncode != 0

        if os.path.exists(BUSYBOX):
            imp = docker("import", str(busybox_tar(tmp_path / "bb.tar")), "busybox:machine-test", env=denv)
            assert imp.returncode == 0, imp.stderr
            run = docker("run", "--rm", "busybox:machine-test", "/bin/sh", "-c", "echo hello from busybox",
                         env=denv)
            assert run.returncode == 0 and run.stdout.strip() == "hello from busybox", run.stderr

        old_cert = (store_root / "machines" / name / "server.pem").read_bytes()
        res = machine("regenerate-certs", "-f", name, env=env)
        assert res.returncode == 0 and "Docker is up and running!" in res.stderr, res.stderr
        assert (store_root / "machines" / name / "server.pem").read_bytes() != old_cert
        ver = docker("version", "--format", "{{.Server.Version}}", env=docker_env(name, env))
        assert ver.returncode == 0, ver.stderr

        res = machine("ssh", name, "cat", "/etc/docker/daemon.json", env=env)
        assert res.returncode == 0 and json.loads(res.stdout)["tlsverify"] is True, res.stderr
        assert machine("ssh", name, "exit", "3", env=env).returncode == 3
    finally:
        res = machine("rm", "-y", "-f", name, env=env, timeout=300)
        assert res.returncode == 0, res.stderr
    assert not (store_root / "machines" / name).exists()


def test_ssh_transport_has_no_tcp_port_and_docker_works_over_ssh(store_root: Path, tmp_path: Path) -> None:
    reason = _skip_reason() or (None if shutil.which("ssh") else "no ssh client")
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


# -- a real Debian 12 guest with systemd and docker.io, provisioned through the generic driver ----------

DEBIAN_DIR = Path(os.environ.get("MACHINE_TEST_DEBIAN_DIR") or Path.home() / ".cache/machine/test-debian")
DEBIAN_PACKAGES = "systemd-sysv,udev,openssh-server,docker.io,linux-image-cloud-amd64,initramfs-tools,iproute2,apparmor"


def _build_debian(d: Path) -> None:
    """A Debian bookworm minbase disk (systemd, sshd, docker.io, cloud kernel) for direct kernel boot."""
    from machine.provision import keys

    d.mkdir(parents=True, exist_ok=True)
    keys.write_keypair(d / "client", keys.new_ed25519("machine-test"))
    hooks = [
        'echo deb12 > "$1/etc/hostname"',
        f'mkdir -p "$1/root/.ssh" && cp {d}/client.pub "$1/root/.ssh/authorized_keys"',
        'printf "[Match]\\nName=en*\\n[Network]\\nDHCP=yes\\n" > "$1/etc/systemd/network/80-dhcp.network"',
        'chroot "$1" systemctl enable systemd-networkd',
        'echo "/dev/vda / ext4 rw 0 1" > "$1/etc/fstab"',
        'rm -f "$1"/etc/ssh/ssh_host_rsa_key* "$1"/etc/ssh/ssh_host_ecdsa_key*',
    ]
    tar = d / "rootfs.tar"
    subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}",
                    *[f"--customize-hook={h}" for h in hooks], "bookworm", str(tar), "http://deb.debian.org/debian"],
                   check=True, capture_output=True, timeout=900)
    root = d / "rootfs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", str(tar)], check=True)
    shutil.copy(next((root / "boot").glob("vmlinuz-*")), d / "vmlinuz")
    shutil.copy(next((root / "boot").glob("initrd.img-*")), d / "initrd.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(d / "disk.img"), "3G"], check=True)
    shutil.rmtree(root)
    tar.unlink()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_debian_systemd_guest_through_the_generic_driver(store_root: Path, tmp_path: Path) -> None:
    """The systemd provisioner for real: drop-in without -H fd://, docker.socket handling, Environment=,
    restart on regenerate-certs. The guest disk is built once (MACHINE_TEST_BUILD_DEBIAN=1, mmdebstrap,
    needs deb.debian.org) and cached in MACHINE_TEST_DEBIAN_DIR (default ~/.cache/machine/test-debian)."""
    from machine import waiting

    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed")
    if not (DEBIAN_DIR / "disk.img").exists():
        if os.environ.get("MACHINE_TEST_BUILD_DEBIAN") != "1" or not shutil.which("mmdebstrap"):
            pytest.skip(f"no Debian test guest in {DEBIAN_DIR}; build it with MACHINE_TEST_BUILD_DEBIAN=1 (mmdebstrap)")
        _build_debian(DEBIAN_DIR)
    ssh_port, engine_port = _free_port(), _free_port()
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,tb-size=256", "-m", "1024", "-smp", "2",
        "-nodefaults", "-no-user-config", "-display", "none", "-serial", f"file:{tmp_path / 'serial.log'}",
        "-kernel", str(DEBIAN_DIR / "vmlinuz"), "-initrd", str(DEBIAN_DIR / "initrd.img"),
        "-append", "root=/dev/vda rw console=ttyS0",
        "-drive", f"file={DEBIAN_DIR / 'disk.img'},if=virtio,format=raw,snapshot=on",
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22,"
                   f"hostfwd=tcp:127.0.0.1:{engine_port}-:{engine_port}",
        "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"])
    env = dict(os.environ)
    try:
        waiting.until(lambda: waiting.ssh_banner("127.0.0.1", ssh_port), timeout=240, what="the Debian guest's sshd",
                      interval=1, failed=lambda: "qemu exited" if qemu.poll() is not None else None)
        res = machine("create", "-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-port",
                      str(ssh_port), "--generic-ssh-key", str(DEBIAN_DIR / "client"), "--generic-engine-port",
                      str(engine_port), "--engine-env", "HTTP_PROXY=http://proxy.invalid:3128", "--engine-label",
                      "lab=deb", "deb", env=env, timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Docker is up and running!" in res.stderr
        denv = docker_env("deb", env)
        info = docker("info", "--format", "{{.HTTPProxy}} {{.Labels}}", env=denv)
        assert info.stdout.strip() == "http://proxy.invalid:3128 [lab=deb provider=generic]", info.stderr
        if os.path.exists(BUSYBOX):
            assert docker("import", str(busybox_tar(tmp_path / "bb.tar")), "bb:t", env=denv).returncode == 0
            run = docker("run", "--rm", "bb:t", "/bin/sh", "-c", "echo hello debian", env=denv)
            assert run.stdout.strip() == "hello debian", run.stderr
        dropin = machine("ssh", "deb", "cat /etc/systemd/system/docker.service.d/10-machine.conf; "
                         "systemctl is-active docker.service; ps -o args= -C dockerd", env=env).stdout
        assert "ExecStart=\nExecStart=/usr/sbin/dockerd" in dropin and "fd://" not in dropin.split("[Service]")[1]
        assert 'Environment="HTTP_PROXY=http://proxy.invalid:3128"' in dropin and "\nactive\n" in dropin
        res = machine("regenerate-certs", "-f", "deb", env=env, timeout=600)
        assert res.returncode == 0 and "Docker is up and running!" in res.stderr, res.stderr
        assert docker("version", "--format", "{{.Server.Version}}", env=docker_env("deb", env)).returncode == 0
        res = machine("rm", "-y", "deb", env=env)
        assert res.returncode == 0 and waiting.ssh_banner("127.0.0.1", ssh_port)  # the host is left running
    finally:
        qemu.kill()
        qemu.wait(30)
