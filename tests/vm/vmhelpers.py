"""Helpers of the real-VM tests: run `machine` and `docker` as subprocesses, read `machine env`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.rootfs import write_busybox_rootfs
from machine.images import machine_os_dir

BUSYBOX = "/bin/busybox"


def skip_reason() -> str | None:
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


def docker_env(name: str, env: dict[str, str], host: str = "127.0.0.1") -> dict[str, str]:
    res = machine("env", name, env=env)
    assert res.returncode == 0, res.stderr
    out = dict(env)
    for line in res.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            out[key] = value.strip('"')
    assert out["DOCKER_TLS_VERIFY"] == "1" and out["DOCKER_HOST"].startswith(f"tcp://{host}:"), out
    return out


def docker(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)


def busybox_tar(path: Path) -> Path:
    return write_busybox_rootfs(path, ("sh", "echo", "cat", "uname"))
