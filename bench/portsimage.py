"""The image of the port-forwarding tests and benchmark: busybox (sh, httpd, nc, dd, ...) plus `udpecho`, a
static UDP echo server compiled from udpecho.c here (busybox has no UDP server)."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

try:
    from bench.rootfs import write_busybox_rootfs
except ImportError:  # run as a script from bench/ (bench/bench.py shadows the package name there)
    from rootfs import write_busybox_rootfs

APPLETS = ("sh", "httpd", "nc", "cat", "echo", "sleep", "dd", "mkdir", "true", "head", "test", "touch")
SOURCE = Path(__file__).resolve().parent / "udpecho.c"


def missing() -> str | None:
    """Why the image cannot be built here, or None."""
    if not shutil.which("gcc"):
        return "gcc is needed to build the UDP echo server of the test image"
    if not (shutil.which("busybox") or Path("/bin/busybox").is_file()):
        return "busybox (busybox-static) is needed for the test image"
    return None


def write_ports_rootfs(path: Path) -> Path:
    """A rootfs tar for `docker import` at `path`: busybox applets and /bin/udpecho."""
    binary = path.with_name("udpecho")
    subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(SOURCE)], check=True, capture_output=True)
    write_busybox_rootfs(path, APPLETS)
    with tarfile.open(path, "a") as tar:
        tar.add(binary, arcname="bin/udpecho")
    return path
