"""A tiny container root filesystem from busybox-static, for `docker import` where no registry is reachable.

One builder for the benchmarks and the real-VM tests (they import it as `bench.rootfs`).
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path

DIRS = ("bin", "etc", "tmp", "proc", "sys", "dev")


def busybox_path() -> str | None:
    """The busybox binary (static, from Debian's busybox-static), or None."""
    found = shutil.which("busybox")
    if found:
        return found
    return "/bin/busybox" if Path("/bin/busybox").is_file() else None


def busybox_rootfs(applets: Iterable[str] = ("sh",)) -> bytes:
    """A tar of /bin/busybox plus `applets` as symlinks to it, and the usual empty top directories."""
    busybox = busybox_path()
    if not busybox:
        raise FileNotFoundError("busybox (busybox-static) is needed for the test image: apt install busybox-static")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in DIRS:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buf.getvalue()


def write_busybox_rootfs(path: Path, applets: Iterable[str] = ("sh",)) -> Path:
    path.write_bytes(busybox_rootfs(applets))
    return path
