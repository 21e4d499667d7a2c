"""Helpers for the machine OS tests: locate the built image, make NoCloud seeds, run qemu (TCG) VMs.

The image is not built here (CI builds it first with `machine os build`): found where `machine` finds it
(machine.images.machineos: MACHINE_OS_DIR, else the user's or the system-wide cache).
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bench.rootfs import busybox_rootfs
from machine.images.machineos import machine_os_dir


def image_dir() -> Path:
    return machine_os_dir()


def _missing() -> str | None:
    for tool in ("qemu-system-x86_64", "qemu-img", "xorriso", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            return f"{tool} not installed"
    d = image_dir()
    for f in ("vmlinuz", "initrd.img", "machine-os.iso", "manifest.json"):
        if not (d / f).is_file():
            return f"machine OS image not built ({d / f} missing): run `machine os build` (or set MACHINE_OS_DIR)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keypair(path: Path) -> tuple[str, str]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True)
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


def make_seed(
    dest: Path,
    *,
    hostname: str,
    authorized_key: str,
    files: dict[str, bytes] | None = None,
    host_key: tuple[str, str] | None = None,
    network_config: dict | None = None,
    instance_id: str = "iid-test",
) -> Path:
    """A NoCloud seed ISO (label cidata); user-data is `#cloud-config` + JSON, like machine/provision/seediso.py
    emits."""
    src = dest.with_suffix(".d")
    src.mkdir(parents=True, exist_ok=True)
    (src / "meta-data").write_text(json.dumps({"instance-id": instance_id, "local-hostname": hostname}))
    ud: dict = {
        "hostname": hostname,
        "disable_root": False,
        "ssh_authorized_keys": [authorized_key],
        "write_files": [
            {"path": p, "encoding": "b64", "content": base64.b64encode(c).decode(), "permissions": "0644"}
            for p, c in (files or {}).items()
        ],
    }
    if host_key:
        ud["ssh_keys"] = {"ed25519_private": host_key[0], "ed25519_public": host_key[1]}
    (src / "user-data").write_text("#cloud-config\n" + json.dumps(ud, indent=1) + "\n")
    if network_config:
        (src / "network-config").write_text(json.dumps(network_config))
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o", str(dest), str(src)],
                   check=True, capture_output=True)  # fmt: skip
    return dest


def busybox_rootfs_tar() -> bytes:
    """A tiny container rootfs: busybox-static and a few applet links."""
    return busybox_rootfs(("sh", "echo", "cat", "ls"))


class VM:
    """One qemu TCG guest with user-mode networking (restrict=on, SSH forwarded on 127.0.0.1)."""

    def __init__(
        self,
        image: Path,
        manifest: dict,
        workdir: Path,
        name: str,
        seed: Path,
        data: Path | None,
        key: Path,
        mode: str = "direct",
        extra: list[str] | None = None,
        known_hosts: Path | None = None,
    ):
        self.image, self.manifest, self.dir, self.name = image, manifest, workdir, name
        self.seed, self.data, self.key, self.mode = seed, data, key, mode
        self.extra = extra or []
        self.known_hosts = known_hosts
        self.port = free_port()
        self.serial = workdir / f"{name}-serial.log"
        self.qmp_path = workdir / f"{name}-qmp.sock"
        self.proc: subprocess.Popen | None = None
        self.t_start = 0.0

    def args(self) -> list[str]:
        a = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,tb-size=128", "-m", "1024", "-smp", "2",
             "-nodefaults", "-no-user-config", "-display", "none", "-serial", f"file:{self.serial}",
             "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]  # fmt: skip
        iso = self.image / "machine-os.iso"
        if self.mode == "direct":
            a += ["-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
                  "-append", f"{self.manifest['cmdline']} machine.hostname={self.name}",
                  "-drive", f"file={iso},if=virtio,format=raw,readonly=on"]  # fmt: skip
        else:
            # The cloud kernel has no AHCI, and q35's CD-ROMs hang off AHCI: BIOS boots an IDE (PIIX) CD on
            # the `pc` machine (like VirtualBox's PIIX4 IDE); UEFI boots a virtio-scsi CD on q35.
            cd = f"file={iso},if=none,id=cd0,format=raw,readonly=on,media=cdrom"
            if self.mode == "bios":
                a[a.index("q35")] = "pc"
                a += ["-drive", cd, "-device", "ide-cd,drive=cd0,bootindex=0"]
            else:
                a += ["-device", "virtio-scsi-pci,id=scsi0", "-drive", cd, "-device", "scsi-cd,drive=cd0,bootindex=0"]
            if self.mode == "uefi":
                code = next(
                    (
                        p
                        for p in ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd")
                        if Path(p).exists()
                    ),
                    None,
                )
                if code is None:
                    pytest.skip("OVMF (Debian package ovmf) not installed")
                vars_src = Path(code.replace("CODE", "VARS"))
                vars_copy = self.dir / f"{self.name}-vars.fd"
                shutil.copy(vars_src, vars_copy)
                a += ["-drive", f"if=pflash,format=raw,readonly=on,file={code}",
                      "-drive", f"if=pflash,format=raw,file={vars_copy}"]  # fmt: skip
        if self.data:
            a += ["-drive", f"file={self.data},if=virtio,format=qcow2"]
        a += ["-drive", f"file={self.seed},if=virtio,format=raw,readonly=on",
              "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
              "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"]  # fmt: skip
        return a + self.extra

    def start(self) -> VM:
        self.serial.unlink(missing_ok=True)
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / f"{self.name}-qemu.err", "w"))  # fmt: skip
        return self

    def console(self) -> str:
        try:
            return self.serial.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.console().splitlines()[-n:])

    def wait_for(self, line: str, timeout: float, count: int = 1) -> float:
        """Wait until `line` appears `count` times as a whole serial line; seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [ln.strip() for ln in self.console().splitlines()]
            failed = [ln for ln in lines if ln.startswith("machine-os: boot-failed")]
            if failed:
                raise AssertionError(f"{failed[0]}\n--- serial console tail ---\n{self.tail()}")
            if lines.count(line) >= count:
                return time.monotonic() - self.t_start
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"qemu exited ({self.proc.returncode}) waiting for {line!r}\n{self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {line!r}\n--- serial tail ---\n{self.tail()}")

    def ssh(self, cmd: str, input: bytes | None = None, timeout: float = 120, check: bool = True):
        # ConnectTimeout covers the banner: under TCG on a loaded host, OpenSSH 10's sshd (which execs sshd-session
        # per connection) took 28 s to answer while the guest was still starting dockerd (load 10-13)
        opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=60", "-o", "LogLevel=ERROR"]
        if self.known_hosts:
            opts += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                     "-o", "HostKeyAlias=machine-test"]  # fmt: skip
        else:
            opts += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        r = subprocess.run(["ssh", "-i", str(self.key), "-p", str(self.port), *opts, "root@127.0.0.1", cmd],
                           input=input, capture_output=True, timeout=timeout)  # fmt: skip
        if check and r.returncode != 0:
            raise AssertionError(f"ssh {cmd!r} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        return r.stdout.decode(errors="replace")

    def qmp(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(self.qmp_path))
            f = s.makefile("rw")
            f.readline()
            for c in ("qmp_capabilities", command):
                f.write(json.dumps({"execute": c}) + "\n")
                f.flush()
                while True:
                    msg = json.loads(f.readline())
                    if "return" in msg or "error" in msg:
                        break

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
