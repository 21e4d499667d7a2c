"""Driver `hyperkit`: a HyperKit VM on macOS (Intel only). DEPRECATED upstream: HyperKit is no longer
maintained and does not run on Apple silicon; there, use the qemu driver (HVF acceleration).

HyperKit boots the machine OS kernel and initrd directly (kexec), with a raw sparse data disk on
virtio-blk, the machine OS ISO and the seed on AHCI CD drives, and one virtio-net NIC on vmnet's
shared network (which needs root). vmnet assigns the MAC for the VM's UUID; `hyperkit -M` prints it.
The address comes from macOS bootpd's leases (/var/db/dhcpd_leases). The hyperkit process is started
detached; its pidfile and a state JSON live in the machine dir; stop sends SIGTERM (ACPI power button),
kill SIGKILL.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import stat
import sys
import uuid as uuidlib
from pathlib import Path
from typing import Any, ClassVar

from machine import machinedir, process, sizes
from machine.driver import Availability, Driver, Features, Option, SSHEndpoint, State
from machine.errors import DriverError, HostNotUsable, ImageNotFound, MachineError, Unsupported

from . import leases

HYPERKIT_DIRS = ("/usr/local/bin", "/opt/homebrew/bin", "/Applications/Docker.app/Contents/Resources/bin")
ROOT_HINT = ("vmnet needs root: run machine with sudo, or make hyperkit setuid root: "
             "sudo chown root:wheel {path} && sudo chmod u+s {path}")
QEMU_HINT = "Use the qemu driver instead (on Apple silicon it uses HVF acceleration): machine create -d qemu NAME"
VMNET_DENIED = "Could not create vmnet interface"
SSH_USER = "root"


class HyperKitDriver(Driver):
    name = "hyperkit"
    description = ("HyperKit VM on macOS, Intel only (DEPRECATED upstream; on Apple silicon use the qemu driver "
                   "with HVF).")
    # hyperkit virtio-9p; reverse-sftp, mounted by the agent over SSH, when the image has no 9p (Debian 12's)
    features = Features(share_mechanisms=("9p", "reverse-sftp"))
    options = (
        sizes.cpus(aliases=("--hyperkit-cpu-count",), env_aliases=("HYPERKIT_CPU_COUNT",)),
        sizes.memory(2048),
        sizes.disk("Data disk size (a raw sparse file)", 20000),
        Option("binary", "Path of the hyperkit executable (default: found on PATH or in Docker Desktop)"),
        Option("cmdline", "Extra kernel command line arguments"),
    )
    # Injectable for tests of the macOS-only paths on other hosts.
    host_platform: ClassVar[str | None] = None
    host_machine: ClassVar[str | None] = None
    leases_path: ClassVar[Path] = leases.LEASES_FILE

    # -- host checks ----------------------------------------------------------------------------
    @classmethod
    def _platform(cls) -> str:
        return cls.host_platform or sys.platform

    @classmethod
    def _apple_silicon(cls) -> bool:
        machine = cls.host_machine or platform.machine()
        if machine in ("arm64", "aarch64"):
            return True
        if cls.host_machine is None and cls._platform() == "darwin":  # x86_64 Python under Rosetta 2
            try:
                return process.run(["sysctl", "-n", "sysctl.proc_translated"], timeout=5).stdout.strip() == "1"
            except MachineError:
                return False
        return False

    @staticmethod
    def _is_root() -> bool:
        return hasattr(os, "geteuid") and os.geteuid() == 0

    @classmethod
    def _binary(cls, options: dict[str, Any] | None = None) -> str | None:
        given = (options or {}).get("binary")
        if given:
            return given if Path(given).is_file() else None
        return process.which("hyperkit", HYPERKIT_DIRS) or process.which("com.docker.hyperkit", HYPERKIT_DIRS)

    @staticmethod
    def _setuid_root(path: str) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        return st.st_uid == 0 and bool(st.st_mode & stat.S_ISUID)

    @classmethod
    def check_available(cls, options: dict[str, Any] | None = None) -> Availability:
        if cls._platform() != "darwin":
            return Availability(False, "HyperKit runs only on macOS (Intel)", QEMU_HINT)
        if cls._apple_silicon():
            return Availability(False, "HyperKit does not run on Apple silicon (it is deprecated upstream)", QEMU_HINT)
        path = cls._binary(options)
        if not path:
            return Availability(False, "hyperkit not found",
                                "Install it (brew install hyperkit; deprecated upstream) or pass --hyperkit-binary, "
                                f"or prefer the qemu driver. {QEMU_HINT}")
        if not (cls._is_root() or cls._setuid_root(path)):
            return Availability(False, "hyperkit is neither run as root nor setuid root",
                                ROOT_HINT.format(path=path))
        return Availability(True, f"hyperkit at {path} (deprecated upstream)")

    # -- files ----------------------------------------------------------------------------------
    @property
    def _dir(self) -> Path:
        return self.ctx.machine_dir.resolve()

    @property
    def _state_file(self) -> Path:
        return self._dir / machinedir.HYPERKIT_STATE

    @property
    def _pidfile(self) -> Path:
        return self._dir / machinedir.HYPERKIT_PID

    @property
    def _disk(self) -> Path:
        return self._dir / machinedir.HYPERKIT_DISK

    def _state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None

    def _option(self, key: str) -> Any:
        opt = next(o for o in self.options if o.key == key)
        value = self.opt(key)
        return opt.default if value is None else opt.convert(self.name, value)

    def _hyperkit(self) -> str:
        path = self._binary(self.ctx.options)
        if not path:
            raise HostNotUsable("hyperkit not found", "Install hyperkit or pass --hyperkit-binary. " + QEMU_HINT)
        return path

    def _boot_files(self) -> tuple[Path, Path, Path | None, str]:
        from machine.images.catalogue import default_image

        image = default_image()
        if not (image.kernel and image.initrd):
            raise ImageNotFound("HyperKit needs the machine OS kernel and initrd (vmlinuz, initrd.img)",
                                "Get the machine OS: machine os build (or machine os pull)")
        from machine.shares import mechanisms

        self.data["guest_share_fs"] = mechanisms.image_filesystems(image.manifest)  # what its kernel mounts
        cmdline = str(image.manifest.get("cmdline") or "")
        if "console=ttyS0" not in cmdline:
            cmdline = f"{cmdline} console=ttyS0".strip()
        extra = self.opt("cmdline")
        return image.kernel, image.initrd, image.iso, f"{cmdline} {extra}".strip() if extra else cmdline

    # -- the command line -----------------------------------------------------------------------
    def command(self, binary: str, uuid: str, print_mac: bool = False) -> list[str]:
        """hyperkit's arguments, as docker-machine-driver-hyperkit builds them (with -M: only print the
        MAC vmnet assigns to `uuid`, then exit)."""
        kernel, initrd, iso, cmdline = self._boot_files()
        shares = [s["host"] for s in self.ctx.shares]
        for path in (kernel, initrd, iso, self.ctx.seed_path, self._dir, *shares):
            if path and "," in str(path):  # hyperkit splits -s and -f values at commas
                raise Unsupported(f"HyperKit cannot use a path with a comma: {path}",
                                  "Move it (or set MACHINE_STORAGE_PATH / MACHINE_OS_DIR) to a path without commas.")
        args = [binary, "-A", "-u"]
        if print_mac:
            args.append("-M")
        else:
            args += ["-F", str(self._pidfile)]
        args += ["-c", str(self._option("cpus")), "-m", f"{self._option('memory')}M",
                 "-s", "0:0,hostbridge", "-s", "31,lpc", "-s", "1:0,virtio-net"]
        if not print_mac:
            args += ["-s", f"2:0,virtio-blk,{self._disk}"]
            slot = 3
            for cd in (iso, self.ctx.seed_path):
                if cd:
                    args += ["-s", f"{slot}:0,ahci-cd,{cd}"]
                    slot += 1
            # shared folders: hyperkit's virtio-9p takes path= and tag= (no read-only: the guest mounts those ro)
            from machine.shares import mechanisms

            self.data["share_mechanism"] = mechanisms.pick(self.ctx.name, self.features.share_mechanisms,
                                                           self.ctx.shares, self.ctx.share_mechanism,
                                                           self.data.get("guest_share_fs"))
            for share in self.ctx.shares if self.data["share_mechanism"] == mechanisms.NINEP else ():
                args += ["-s", f"{slot}:0,virtio-9p,path={share['host']},tag={share['tag']}"]
                slot += 1
        args += ["-U", uuid]
        if not print_mac:
            tty, console = self._dir / machinedir.HYPERKIT_TTY, self._dir / machinedir.CONSOLE_LOG
            args += ["-l", f"com1,autopty={tty},log={console}"]
        args += ["-f", f"kexec,{kernel},{initrd},{cmdline}"]
        return args

    def _mac_for(self, binary: str, uuid: str) -> str:
        res = process.run(self.command(binary, uuid, print_mac=True), timeout=60, what="hyperkit -M")
        text = res.stdout + res.stderr
        m = re.search(r"MAC:\s*([0-9a-fA-F:]{11,17})", res.stdout)
        if res.ok and m:
            return leases.normalise_mac(m.group(1))
        if VMNET_DENIED in text:
            raise HostNotUsable("hyperkit could not create the vmnet interface (permission denied)",
                                ROOT_HINT.format(path=binary))
        raise DriverError(f"hyperkit -M did not print the VM's MAC address: {text.strip()[-400:]!r}",
                          "Run again with -D to see the hyperkit command.")

    # -- lifecycle --------------------------------------------------------------------------------
    def create(self) -> None:
        if self._state() is not None:
            return
        binary = self._hyperkit()
        uuid = self.data.get("uuid") or str(uuidlib.uuid4())
        self.data["uuid"] = uuid
        mac = self._mac_for(binary, uuid)
        if not self._disk.exists():
            with open(self._disk, "wb") as f:  # raw and sparse: blocks are allocated as the guest writes
                f.truncate(self._option("disk_size") * 1024 * 1024)
        self.data["mac"] = mac
        state = {"uuid": uuid, "mac": mac, "binary": binary, "disk": str(self._disk)}
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_file)

    def _pid(self) -> int | None:
        """The running hyperkit's pid: from its pidfile, checked to be alive and to be ours (same UUID
        on its command line), so a stale pidfile or a reused pid is not mistaken for the VM."""
        try:
            pid = int(self._pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = self.data.get("pid")
        if not pid:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by root
        res = process.run(["ps", "-ww", "-p", str(pid), "-o", "args="], timeout=10)
        state = self._state() or {}
        if not res.ok or state.get("uuid", "-") not in res.stdout or "<defunct>" in res.stdout:
            return None
        return pid

    def start(self) -> None:
        state = self._state()
        if state is None:
            raise DriverError(f"HyperKit VM {self.ctx.name!r} does not exist", "Remove and create the machine again.")
        if self._pid():
            return
        self._pidfile.unlink(missing_ok=True)
        argv = self.command(self._hyperkit(), state["uuid"])
        self.data["pid"] = process.spawn(argv, log_file=self._dir / machinedir.HYPERKIT_LOG, cwd=self._dir)
        state["cmdline"] = argv
        self._state_file.write_text(json.dumps(state, indent=2))

    def stop(self, force: bool = False) -> None:
        pid = self._pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        self.stop(force=True)
        for name in (machinedir.HYPERKIT_STATE, machinedir.HYPERKIT_PID, machinedir.HYPERKIT_DISK,
                     machinedir.HYPERKIT_TTY, machinedir.HYPERKIT_TMP):
            (self._dir / name).unlink(missing_ok=True)
        self.data.pop("pid", None)

    def status(self) -> State:
        if self._state() is None:
            return State.NOT_CREATED
        return State.RUNNING if self._pid() else State.STOPPED

    # -- addresses --------------------------------------------------------------------------------
    def ip(self) -> str | None:
        state = self._state()
        if not state or not self._pid():
            return None
        return leases.ip_for(state["mac"], self.leases_path)

    def ssh_endpoint(self) -> SSHEndpoint | None:
        ip = self.ip()
        return SSHEndpoint(ip, 22, SSH_USER) if ip else None

    def console_log(self) -> Path | None:
        return self._dir / machinedir.CONSOLE_LOG


DRIVER = HyperKitDriver
