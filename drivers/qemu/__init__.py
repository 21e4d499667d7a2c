"""Driver `qemu`: runs qemu-system directly (no daemon), one detached process per machine.

The machine dir holds everything: the disks (a blank qcow2 data disk for the machine OS, or a
qcow2 overlay on a cached cloud image), `console.log` (serial console), `qemu.log` (qemu's own
output), `qemu.pid` and the QMP socket `qmp.sock` (a short path under the temp dir when the
machine dir is too deep for a unix socket; TCP on 127.0.0.1 on Windows). Networking is qemu's
user mode: the host reaches the guest through forwards on 127.0.0.1 (SSH and the engine port;
`--qemu-host-address` picks another address of this host), so ip() is that address. State comes
from the process and QMP `query-status`; `saved-state.bin` makes a stopped machine Saved (savedstate.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from machine import machinedir, sizes
from machine.driver import CLUSTER_VDE, PORTS_HYPERVISOR, Availability, Driver, Features, Option, SSHEndpoint, State

from . import ports, qmp
from .accel import ACCELS
from .kvmprobe import install_hint
from .qmp import socket_path

# what the guest kernel prints on the serial console when it powers itself off
POWER_OFF_MARKS = ("reboot: Power down", "reboot: System halted", "System halted")
START_CHECK = 5.0  # seconds start() watches for qemu failing at once (bad args, port taken)
QMP_TIMEOUT = 2.0
RUN_STATES = {"running": State.RUNNING, "paused": State.PAUSED, "suspended": State.PAUSED,
              "prelaunch": State.STARTING, "inmigrate": State.STARTING, "shutdown": State.STOPPING,
              "finish-migrate": State.STOPPING, "postmigrate": State.STOPPING,
              "internal-error": State.ERROR, "io-error": State.ERROR, "guest-panicked": State.ERROR}
class QemuDriver(Driver):
    name = "qemu"
    description = "qemu-system run directly (KVM/HVF/WHPX when usable, else TCG); user-mode networking."
    # a Swarm node's second NIC plugs into the cluster's vde_switch
    features = Features(cluster_nic=CLUSTER_VDE, share_mechanisms=("virtiofs", "9p", "reverse-sftp"),
                        port_forwarding=PORTS_HYPERVISOR, saved_state=True)
    options: ClassVar[tuple[Option, ...]] = (
        sizes.cpus(settable=True),
        sizes.memory(1024, settable=True),
        sizes.disk("Size of the (sparse) disk"),
        Option("image", "Boot image: a catalogue name (machine-os, debian-12, ubuntu-24.04), URL or path",
               default="machine-os"),
        Option("accel", "Accelerator", default="auto", choices=ACCELS, settable=True),
        Option("restrict", "Cut the guest off from outside networks (restrict=on: no docker pull, no UDP from "
                           "published ports); auto (= off) gives every image outside networks, as on Linux",
               default="auto", choices=("auto", "on", "off"), settable=True),
        Option("host-address", "Host address the SSH and engine forwards listen on (another loopback address, "
                               "or a LAN address to share the engine)", default=ports.HOST, type=ports.HostAddress,
               settable=True),
    )

    # -- paths --------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.ctx.machine_dir

    def _path(self, name: str) -> Path:
        return self.dir / name

    def console_log(self) -> Path | None:
        return self._path(machinedir.CONSOLE_LOG)

    def _qmp_address(self) -> str:
        return self.data.get("qmp") or qmp.unix_address(socket_path(self.dir))

    def _disks(self) -> list[Path]:
        return [p for p in (self._path(machinedir.DATA_DISK), self._path(machinedir.ROOT_DISK)) if p.exists()]

    # -- availability ---------------------------------------------------------------------------
    @classmethod
    def check_available(cls, options: dict[str, Any] | None = None) -> Availability:
        from machine.drivers.qemu.kvmprobe import find_qemu, host_arch, qemu_version

        from machine import process

        qemu = find_qemu()
        if not qemu:
            return Availability(False, f"qemu-system-{host_arch()} was not found", install_hint())
        version = qemu_version(qemu)
        if not version:
            return Availability(False, f"{qemu} does not run (--version failed)", install_hint())
        from .disks import MAC_QEMU_DIRS, WINDOWS_QEMU_DIRS

        if not process.which("qemu-img", WINDOWS_QEMU_DIRS if sys.platform == "win32" else MAC_QEMU_DIRS):
            return Availability(False, "qemu-img was not found", install_hint())
        image = (options or {}).get("image")
        if image:
            from machine.errors import MachineError
            from machine.images import catalogue

            try:
                catalogue.resolve(str(image))
            except MachineError as e:
                return Availability(False, e.message, e.hint)
        return Availability(True, f"QEMU {version} ({qemu})")

    # -- create -------------------------------------------------------------------------------
    def create(self) -> None:
        from .lifecycle import prepare_machine

        prepare_machine(self)

    def notes(self) -> list[str]:
        """Lines the orchestrator shows the user after create/start (the accelerator verdict)."""
        note = self.data.get("accel_note")
        return [note] if note else []

    # -- process --------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        """The pid of our running qemu, or None (a stale pid file or a reused pid does not count)."""
        from machine.process import pid_alive

        try:
            pid = int(self._path(machinedir.QEMU_PID).read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        cmd = Path(f"/proc/{pid}/cmdline")
        if sys.platform.startswith("linux") and cmd.exists():
            try:
                if str(self.dir).encode() not in cmd.read_bytes():
                    return None  # the pid now belongs to another process
            except OSError:
                return None
        return pid

    def start(self) -> None:
        from .lifecycle import launch

        launch(self)

    def stop(self, force: bool = False) -> None:
        from machine.process import kill_pid, pid_alive

        pid = self._pid()
        if pid is None:
            return
        if not force:
            try:
                qmp.command(self._qmp_address(), "system_powerdown", QMP_TIMEOUT)
            except qmp.QMPError as e:
                from machine.errors import DriverError

                raise DriverError(f"Could not ask {self.ctx.name!r} to power off: {e}",
                                  f"Kill it instead: machine kill {self.ctx.name}") from e
            return
        try:
            qmp.command(self._qmp_address(), "quit", QMP_TIMEOUT, tolerate_eof=True)
        except qmp.QMPError:
            pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        if pid_alive(pid):
            kill_pid(pid)
        self._path(machinedir.QEMU_PID).unlink(missing_ok=True)  # stopped on purpose: not a crash
        from .sharing import stop_daemons

        stop_daemons(self)

    def unexpected_exit(self) -> str:
        """qemu left its pid file (it is removed when we stop it) and is gone, and the guest did not power itself
        off: it crashed or was killed. Says what the console and qemu's log show last."""
        from machine.process import pid_alive

        try:
            pid = int(self._path(machinedir.QEMU_PID).read_text().strip())
        except (OSError, ValueError):
            return ""
        if pid_alive(pid):
            return ""
        console = self._path(machinedir.CONSOLE_LOG)
        try:
            tail = console.read_bytes()[-4096:].decode(errors="replace")
        except OSError:
            tail = ""
        if any(mark in tail for mark in POWER_OFF_MARKS):
            return ""  # the guest powered itself off (shutdown inside the VM)
        qemu_said = ""
        try:
            qemu_said = " ".join(self._path(machinedir.QEMU_LOG).read_text(errors="replace").split()[-30:])
        except OSError:
            pass
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
        return (f"qemu (pid {pid}) exited unexpectedly: it crashed or was killed"
                + (f"; qemu said: {qemu_said[-200:]}" if qemu_said else "")
                + (f"; last console line: {last[-120:]}" if last else "")
                + f" (see {console}). Start it again: machine start {self.ctx.name}")

    def remove(self) -> None:
        self.stop(force=True)
        from .sharing import stop_daemons

        stop_daemons(self)  # also when qemu was gone already
        sock = socket_path(self.dir)
        made = (machinedir.DATA_DISK, machinedir.ROOT_DISK, machinedir.CONSOLE_LOG, machinedir.QEMU_LOG,
                machinedir.QEMU_PID, machinedir.QMP_SOCKET, machinedir.SAVED_STATE, machinedir.SAVED_STATE_PART)
        logs = list(self.dir.glob(machinedir.VIRTIOFSD_LOG.format("*")))
        for path in (*(self._path(name) for name in made), sock, *logs):
            path.unlink(missing_ok=True)
        self.data.pop("created", None)

    # -- state ----------------------------------------------------------------------------------
    def status(self) -> State:
        if not self._disks():
            return State.NOT_CREATED
        if self._pid() is None:
            return State.SAVED if (self.dir / machinedir.SAVED_STATE).is_file() else State.STOPPED
        try:
            run_state = qmp.query_status(self._qmp_address(), QMP_TIMEOUT)
        except (qmp.QMPError, OSError, EOFError):
            started = float(self.data.get("started_at", 0))
            return State.STARTING if time.time() - started < 30 else State.UNKNOWN
        return RUN_STATES.get(run_state, State.UNKNOWN)

    # -- saved state ----------------------------------------------------------------------------
    def saved_state_blocker(self) -> str:
        from .savedstate import blocker

        return blocker(self)

    def save_state(self) -> None:
        from .savedstate import save

        save(self)

    def finish_save(self) -> bool:
        from .savedstate import finish

        return finish(self)

    def discard_saved_state(self) -> None:
        from .savedstate import discard

        discard(self)

    # -- addresses ------------------------------------------------------------------------------
    @property
    def host_address(self) -> str:
        """Where the forwards listen: --qemu-host-address (127.0.0.1 by default)."""
        return str(self.opt("host_address") or ports.HOST)

    def ip(self) -> str | None:
        """The host address of the user-mode forwards (127.0.0.1 unless --qemu-host-address), not a guest
        address."""
        return self.host_address if self.data.get("ssh_port") else None

    def ssh_endpoint(self) -> SSHEndpoint | None:
        if not self.data.get("ssh_port") or self._pid() is None:
            return None
        return SSHEndpoint(self.host_address, int(self.data["ssh_port"]), str(self.data.get("ssh_user", "root")))

    def engine_address(self, guest_port: int) -> tuple[str, int] | None:
        if guest_port == self.ctx.engine_port and self.data.get("engine_port"):
            return self.host_address, int(self.data["engine_port"])
        return None

    # -- published ports ------------------------------------------------------------------------
    def _hostfwd(self, command_line: str) -> None:
        from machine.errors import DriverError

        try:
            output = qmp.hmp(self._qmp_address(), command_line, QMP_TIMEOUT)
        except (qmp.QMPError, OSError, EOFError) as e:
            raise DriverError(f"{command_line}: {e}", "Is the machine running?") from e
        error = ports.hostfwd_error(command_line, output)
        if error:
            raise DriverError(f"qemu refused {command_line!r}: {error}", "Is the host port free?")

    def forward_port(self, proto: str, host_ip: str, host_port: int, guest_port: int) -> None:
        from .lifecycle import _restrict

        if proto == "udp" and _restrict(self):
            from machine.errors import DriverError

            name = self.ctx.name
            fix = f"machine stop {name}; machine set {name} --qemu-restrict off; machine start {name}"
            raise DriverError(ports.restricted_udp_error("--qemu-restrict", fix),
                              "Forward TCP only, or lift the restriction as said.")
        self._hostfwd(ports.hostfwd_add(proto, host_ip, host_port, guest_port))

    def unforward_port(self, proto: str, host_ip: str, host_port: int) -> None:
        self._hostfwd(ports.hostfwd_remove(proto, host_ip, host_port))


DRIVER = QemuDriver
