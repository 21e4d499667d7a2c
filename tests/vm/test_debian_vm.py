"""A real Debian 12 guest (systemd, no machine OS) provisioned through the generic driver."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.vm.vmhelpers import BUSYBOX, busybox_tar, docker, docker_env, machine

pytestmark = [pytest.mark.vm, pytest.mark.slow]


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
