"""Shared folders for the qemu driver: virtiofs (one `virtiofsd` per share, started before qemu and gone with
it) when this host has virtiofsd, else virtio-9p (built into qemu). The guest mounts each by its tag.

virtiofsd exits by itself when qemu closes its socket (guest power-off, qemu killed); `stop_daemons` kills
what is left after a kill or before a removal or a new start.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from machine import machinedir, process
from machine.errors import DriverError
from machine.shares import mechanisms

from .qmp import short_socket

if TYPE_CHECKING:
    from . import QemuDriver

SOCKET_START = 5.0  # seconds a virtiofsd gets to create its socket


def _socket(driver: QemuDriver, index: int) -> Path:
    """The vhost-user socket of share `index`: in the machine dir when the path is short enough (sun_path)."""
    return short_socket(driver.dir, machinedir.VIRTIOFS_SOCKET.format(index), f"machine-vfs-{{digest}}-{index}.sock")


def _pid_file(driver: QemuDriver, index: int) -> Path:
    return driver.dir / machinedir.VIRTIOFSD_PID.format(index)


def _our_pid(driver: QemuDriver, index: int) -> int | None:
    """The pid of share `index`'s virtiofsd while it runs (a reused pid does not count)."""
    try:
        pid = int(_pid_file(driver, index).read_text().strip())
    except (OSError, ValueError):
        return None
    if not process.pid_alive(pid):
        return None
    cmd = Path(f"/proc/{pid}/cmdline")
    try:
        if cmd.exists() and str(_socket(driver, index)).encode() not in cmd.read_bytes():
            return None
    except OSError:
        return None
    return pid


def mechanism(driver: QemuDriver) -> str | None:
    """The mechanism this start uses for the machine's shares (None: no shares)."""
    return mechanisms.pick(driver.ctx.name, type(driver).features.share_mechanisms, driver.ctx.shares,
                           driver.ctx.share_mechanism, driver.data.get("guest_share_fs")) or None


def start_daemons(driver: QemuDriver) -> list[tuple[str, str]]:
    """Start one virtiofsd per share; [(tag, socket)] for qemu's command line."""
    stop_daemons(driver)
    binary = mechanisms.find_virtiofsd()
    if not binary:
        raise DriverError("virtiofsd was not found", "Install qemu-system-common, or see 'machine doctor'.")
    started: list[tuple[str, str, int]] = []
    for i, share in enumerate(driver.ctx.shares):
        sock = _socket(driver, i)
        sock.unlink(missing_ok=True)
        log = driver.dir / machinedir.VIRTIOFSD_LOG.format(i)
        log.unlink(missing_ok=True)
        args = [binary, f"--socket-path={sock}", "-o", f"source={share['host']}", "-o", "cache=auto",
                "-o", "no_posix_lock", "-o", "no_flock"]
        pid = process.spawn(args, log_file=log, cwd=driver.dir)
        _pid_file(driver, i).write_text(f"{pid}\n")
        started.append((share["tag"], str(sock), pid))
    deadline = time.monotonic() + SOCKET_START
    for i, (_, sock, pid) in enumerate(started):
        while not Path(sock).exists():
            if not process.pid_alive(pid) or time.monotonic() > deadline:
                err = driver.dir / machinedir.VIRTIOFSD_LOG.format(i)
                text = err.read_text(errors="replace").strip()[-400:] if err.exists() else ""
                stop_daemons(driver)
                raise DriverError(f"virtiofsd for {driver.ctx.shares[i]['host']} did not start: {text or 'no output'}",
                                  "See 'machine doctor'; or share nothing: machine set NAME --no-share")
            time.sleep(0.02)
    return [(tag, sock) for tag, sock, _ in started]


def stop_daemons(driver: QemuDriver) -> None:
    """Kill the virtiofsd processes of this machine that are still running; remove their sockets and pid files."""
    for pid_file in driver.dir.glob(machinedir.VIRTIOFSD_PID.format("*")):
        try:
            index = int(pid_file.stem[len("virtiofsd"):])
        except ValueError:
            continue
        pid = _our_pid(driver, index)
        if pid is not None:
            process.kill_pid(pid)
        pid_file.unlink(missing_ok=True)
        _socket(driver, index).unlink(missing_ok=True)


def spec_fields(driver: QemuDriver) -> dict[str, Any]:
    """VMSpec fields for the shares (starts virtiofsd when that is the mechanism); records the mechanism."""
    chosen = mechanism(driver)
    driver.data["share_mechanism"] = chosen or ""
    if chosen == mechanisms.VIRTIOFS:
        return {"virtiofs": tuple(start_daemons(driver))}
    if chosen == mechanisms.NINEP:
        return {"ninep": tuple((s["tag"], s["host"], bool(s.get("ro"))) for s in driver.ctx.shares)}
    return {}
