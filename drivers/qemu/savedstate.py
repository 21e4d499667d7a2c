"""Saved state for the qemu driver: the VM's memory and devices as a migration stream in the machine folder.

Saving: QMP `stop` (the guest pauses, so the stream is one consistent picture), then `migrate` to a file this
process opened and handed to qemu over the QMP socket (`getfd`, SCM_RIGHTS): qemu 7.2 has no `file:` URI, and
this needs no shell (`exec:`) on the host. qemu writes `saved-state.part` in the background; finish_save() renames
it to `saved-state.bin` once `query-migrate` says completed, and quits qemu.

Resuming: qemu starts with `-incoming defer` and the same devices; `migrate-incoming` reads the file from an fd
passed the same way. qemu runs the guest once the stream is loaded, and exits when it cannot load it (the
orchestrator then boots from scratch). Needs a unix QMP socket: not on Windows, whose QMP is TCP.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from machine import machinedir
from machine.errors import DriverError
from machine.shares import mechanisms

from . import qmp

if TYPE_CHECKING:
    from . import QemuDriver

FD_NAME = "machine-state"
MAX_BANDWIDTH = 1 << 40  # bytes/s: no throttle (qemu's default is 32 MiB/s, for live migration over a network)
UNMIGRATABLE = {mechanisms.VIRTIOFS: "vhost-user-fs (virtiofs)", mechanisms.NINEP: "virtio-9p (a mounted 9p export)"}


def has_state(driver: QemuDriver) -> bool:
    return (driver.dir / machinedir.SAVED_STATE).is_file()


def blocker(driver: QemuDriver) -> str:
    """Why qemu cannot save this machine: it refuses to migrate virtiofs and mounted 9p devices; no fd passing
    over a TCP QMP socket (Windows)."""
    mechanism = str(driver.data.get("share_mechanism") or "")
    if driver.ctx.shares and mechanism in UNMIGRATABLE:
        return (f"qemu cannot save the state of {driver.ctx.name!r}: its shared folders use "
                f"{UNMIGRATABLE[mechanism]}, which qemu cannot migrate")
    if not qmp.can_pass_files(driver._qmp_address()):
        return "saving a qemu machine's state needs a unix QMP socket, which this host does not have"
    return ""


def _pass_file(q: qmp.QMPClient, fd: int) -> None:
    try:
        q.execute("closefd", {"fdname": FD_NAME})  # a stale one from an earlier attempt
    except qmp.QMPError:
        pass
    q.execute("getfd", {"fdname": FD_NAME}, fd=fd)


def save(driver: QemuDriver) -> None:
    """Pause the guest and start writing its state to saved-state.part (qemu goes on in the background)."""
    part = driver.dir / machinedir.SAVED_STATE_PART
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with qmp.QMPClient(driver._qmp_address(), 5.0) as q:
            q.execute("stop")
            try:
                q.execute("migrate-set-parameters", {"max-bandwidth": MAX_BANDWIDTH})
                _pass_file(q, fd)
                q.execute("migrate", {"uri": f"fd:{FD_NAME}"})
            except qmp.QMPError:
                q.execute("cont")
                raise
    except (qmp.QMPError, OSError) as e:
        part.unlink(missing_ok=True)
        raise DriverError(f"qemu could not start saving the state of {driver.ctx.name!r}: {e}",
                          f"It runs on. Stop it instead: machine stop {driver.ctx.name}") from e
    finally:
        os.close(fd)


def finish(driver: QemuDriver) -> bool:
    """True once the stream is complete: it becomes saved-state.bin and qemu quits. A failed migration lets the
    guest run on and raises DriverError."""
    part = driver.dir / machinedir.SAVED_STATE_PART
    if driver._pid() is None:
        part.unlink(missing_ok=True)
        if has_state(driver):
            return True
        raise DriverError(f"qemu exited while saving the state of {driver.ctx.name!r}",
                          f"See {driver.dir / machinedir.QEMU_LOG}; start it again: machine start {driver.ctx.name}")
    try:
        with qmp.QMPClient(driver._qmp_address(), 5.0) as q:
            info = q.execute("query-migrate")
            status = str(info.get("status", "")) if isinstance(info, dict) else ""
            if status in ("failed", "cancelled"):
                q.execute("cont")
    except (qmp.QMPError, OSError, EOFError) as e:
        raise DriverError(f"qemu did not answer while saving the state of {driver.ctx.name!r}: {e}",
                          f"See {driver.dir / machinedir.QEMU_LOG}") from e
    if status in ("failed", "cancelled"):
        part.unlink(missing_ok=True)
        why = info.get("error-desc") or status
        raise DriverError(f"qemu could not save the state of {driver.ctx.name!r}: {why}",
                          f"It runs on. Stop it instead: machine stop {driver.ctx.name}")
    if status != "completed":
        return False
    os.replace(part, driver.dir / machinedir.SAVED_STATE)
    driver.stop(force=True)  # quit: its state is on disk
    return True


def incoming(driver: QemuDriver) -> None:
    """Hand the started qemu (-incoming defer) the saved state to load. It runs the guest once loaded; it
    exits when it cannot load it."""
    path = driver.dir / machinedir.SAVED_STATE
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        with qmp.QMPClient(driver._qmp_address(), 5.0) as q:
            _pass_file(q, fd)
            q.execute("migrate-incoming", {"uri": f"fd:{FD_NAME}"})
    except (qmp.QMPError, OSError, EOFError) as e:
        raise DriverError(f"qemu did not take the saved state of {driver.ctx.name!r}: {e}",
                          f"See {driver.dir / machinedir.QEMU_LOG}") from e
    finally:
        os.close(fd)


def discard(driver: QemuDriver) -> None:
    for name in (machinedir.SAVED_STATE, machinedir.SAVED_STATE_PART):
        (driver.dir / name).unlink(missing_ok=True)

