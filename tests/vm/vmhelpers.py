"""Helpers of the real-VM tests: run `machine` and `docker` as subprocesses, read `machine env`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.rootfs import write_busybox_rootfs
from machine.images.catalogue import machine_os_dir

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


def check_engine(denv: dict[str, str], tmp_path: Path, labels: list[str], message: str) -> dict:
    """What both real-VM provisioning tests check through TLS: the engine options (created with
    --engine-storage-driver vfs, --engine-insecure-registry registry.invalid:5000 and `labels`) in
    `docker info`; a client without our certificate refused; an imported busybox image runs and prints
    `message`. Returns docker info."""
    info = json.loads(docker("info", "--format", "{{json .}}", env=denv).stdout)
    assert info["Driver"] == "vfs"  # --engine-storage-driver (the engines' default is overlay2)
    assert sorted(info["Labels"]) == sorted(labels)
    assert info["RegistryConfig"]["IndexConfigs"]["registry.invalid:5000"]["Secure"] is False
    # without the client certificate the engine refuses (tlsverify)
    bare = {k: v for k, v in denv.items() if k not in ("DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")}
    bare["DOCKER_CONFIG"] = str(tmp_path / "empty-docker-config")
    assert docker("version", "--format", "{{.Server.Version}}", env=bare, timeout=60).returncode != 0
    if os.path.exists(BUSYBOX):
        imp = docker("import", str(busybox_tar(tmp_path / "bb.tar")), "busybox:machine-test", env=denv)
        assert imp.returncode == 0, imp.stderr
        run = docker("run", "--rm", "busybox:machine-test", "/bin/sh", "-c", f"echo {message}", env=denv)
        assert run.returncode == 0 and run.stdout.strip() == message, run.stderr
    return info


def libvirt_reason(uri: str = "qemu:///system") -> str | None:
    """Why no real libvirt VM can run here: no binding, or no libvirtd answering at `uri` (None when one does)."""
    try:
        import libvirt
    except ImportError:
        return "libvirt-python is not installed (pip install libvirt-python)"
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError as e:
        return f"libvirtd is not reachable at {uri} (start it: libvirtd -d): {e}"
    return None


def pids_of(program: str, mentioning: str) -> list[int]:
    """The processes whose program path contains `program` and whose command line mentions `mentioning` (a machine
    folder, a domain name)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if program.encode() in argv[0] and mentioning.encode() in b" ".join(argv):
            found.append(int(proc.name))
    return found


def http_get(port: int, timeout: float = 60) -> str:
    """The body of GET / on 127.0.0.1:port, retried until `timeout`; "" when nothing answered."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := c.recv(65536):
                    data += chunk
            if b"\r\n\r\n" in data:
                return data.split(b"\r\n\r\n", 1)[1].decode()
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return ""
        time.sleep(0.3)
