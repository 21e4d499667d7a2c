"""Making a qemu machine (image, disks, ports, accelerator) and launching its qemu process."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from machine import hostports, machinedir, process
from machine.errors import DriverError, MachineError

from . import cmdline, disks, qmp
from .accel import choose

if TYPE_CHECKING:
    from . import QemuDriver


# -- create -----------------------------------------------------------------------------------


def manifest_boot(manifest: dict[str, Any]) -> tuple[str, list[str]]:
    """(kernel command line, extra qemu args) the machine OS build recommends in manifest.json."""
    q = manifest.get("qemu") if isinstance(manifest.get("qemu"), dict) else {}
    line = q.get("cmdline") or q.get("append") or manifest.get("cmdline") or manifest.get("kernel_cmdline") or ""
    if isinstance(line, list):
        line = " ".join(str(x) for x in line)
    args = q.get("args") or manifest.get("qemu_args") or []
    if isinstance(args, str):
        args = args.split()
    return str(line), [str(a) for a in args]


def _image_data(driver: QemuDriver) -> dict[str, Any]:
    """Resolve the image option and make the disks; what start() needs to boot it."""
    from machine.images import catalogue

    spec = str(driver.opt("image") or "machine-os")
    image = catalogue.resolve(spec)
    size = int(driver.opt("disk-size") or 20 * 1024)
    if image.local and image.kernel:  # the machine OS: direct kernel boot + blank data disk
        from machine.shares import mechanisms

        line, extra = manifest_boot(image.manifest)
        data_disk = driver._path(disks_name("data"))
        if not data_disk.exists():
            disks.create_blank(data_disk, size)
        return {"image": spec, "boot": "kernel", "seed_kind": image.seed, "kernel": str(image.kernel.resolve()),
                "initrd": str(image.initrd.resolve()) if image.initrd else "",
                "os_iso": str(image.iso.resolve()) if image.iso else "", "cmdline": line, "extra_args": extra,
                "ssh_user": "root", "guest_share_fs": mechanisms.image_filesystems(image.manifest)}
    if image.format == "iso" and not image.url and image.path is None:
        raise DriverError(f"Image {spec!r} cannot be booted by the qemu driver", "Use a qcow2 or raw disk image.")
    base = catalogue.fetch(image, driver.ctx.cache_dir or driver.dir)
    if image.format == "iso":
        raise DriverError(f"Image {spec!r} is an installer ISO", "Use a cloud image (qcow2/raw) or the machine OS.")
    root = driver._path(disks_name("root"))
    if not root.exists():
        disks.create_overlay(root, Path(base), "qcow2" if image.format == "qcow2" else "raw", size)
    return {"image": spec, "boot": "disk", "base_image": str(base), "ssh_user": image.ssh_user, "seed_kind": image.seed,
            "arch": image.arch}


def disks_name(kind: str) -> str:
    return machinedir.DATA_DISK if kind == "data" else machinedir.ROOT_DISK


def prepare_machine(driver: QemuDriver) -> None:
    """create(): resolve the image, make the disks, pick ports, choose the accelerator. Idempotent."""
    data = driver.data
    if data.get("created") and driver._disks():
        return
    data.update(_image_data(driver))
    if not data.get("ssh_port"):
        count = 3 if sys.platform == "win32" else 2
        picked = hostports.pick_free_ports(count, driver.host_address)
        data["ssh_port"], data["engine_port"] = picked[0], picked[1]
        if sys.platform == "win32":
            data["qmp"] = qmp.tcp_address(picked[2])
    data["engine_guest_port"] = driver.ctx.engine_port
    _choose_accel(driver)
    data["created"] = True


def _choose_accel(driver: QemuDriver) -> None:
    accel, note = choose(str(driver.opt("accel") or "auto"), sys.platform, driver.ctx.cache_dir)
    driver.data["accel"], driver.data["accel_note"] = accel, note


# -- start ------------------------------------------------------------------------------------


def _restrict(driver: QemuDriver) -> bool:
    """Only `--qemu-restrict on` cuts the guest off: `auto` gives every image (the machine OS too) outside networks,
    so `docker pull` and UDP replies work as on native Linux. Machines made when `auto` meant "on for the machine OS"
    (saved `default_restrict`) get outside networks at their next start as well."""
    return str(driver.opt("restrict") or "auto") == "on"


def vm_spec(driver: QemuDriver, qemu: str, platform: str | None = None, arch: str | None = None) -> cmdline.VMSpec:
    """The VMSpec for this machine from its options and saved data."""
    from machine.drivers.qemu.kvmprobe import host_arch

    data, arch = driver.data, arch or host_arch()
    platform = platform or sys.platform
    boot: dict[str, Any] = {}
    if data.get("boot") == "kernel":
        for key in ("kernel", "initrd", "os_iso"):
            if data.get(key) and not Path(data[key]).is_file():
                raise DriverError(f"The machine OS file {data[key]} is gone",
                                  "Rebuild the machine OS (machine os build), or recreate the machine.")
        boot = {"kernel": Path(data["kernel"]), "initrd": Path(data["initrd"]) if data.get("initrd") else None,
                "os_iso": Path(data["os_iso"]) if data.get("os_iso") else None,
                "cmdline": cmdline.kernel_cmdline(data.get("cmdline", ""), driver.ctx.name, arch),
                "data_disk": driver._path(disks_name("data"))}
    else:
        boot = {"root_disk": driver._path(disks_name("root")),
                "firmware": disks.aarch64_firmware() if arch == "aarch64" else None}
    qmp_addr = data.get("qmp") or qmp.unix_address(qmp.socket_path(driver.dir))
    nic = driver.ctx.cluster_nic or {}
    return cmdline.VMSpec(
        name=driver.ctx.name, qemu=qemu, platform=platform, arch=arch, accel=data.get("accel", "tcg"),
        cpus=int(driver.opt("cpus") or 2), memory_mib=int(driver.opt("memory") or 1024),
        console_log=driver._path(machinedir.CONSOLE_LOG), qmp=qmp_addr, ssh_port=int(data["ssh_port"]),
        engine_host_port=int(data["engine_port"]), engine_guest_port=int(data.get("engine_guest_port", 2376)),
        restrict_network=_restrict(driver), host_address=driver.host_address, seed=driver.ctx.seed_path,
        cluster_switch=str(nic["switch"]) if nic.get("switch") else None, cluster_mac=nic.get("mac"),
        extra_args=tuple(data.get("extra_args") or ()), **boot)


def _free_ports(driver: QemuDriver) -> None:
    """Pick new host ports when another program took ours since the machine last ran."""
    data = driver.data
    for key in ("ssh_port", "engine_port"):
        if not hostports.port_free(int(data[key]), driver.host_address):
            data[key] = hostports.pick_free_ports(1, driver.host_address)[0]


def launch(driver: QemuDriver) -> None:
    """start(): spawn qemu detached, record its pid, and check for a few seconds that it came up
    (qemu fails at once on bad arguments or a taken port). Does not wait for the guest."""
    from machine.drivers.qemu.kvmprobe import find_qemu, install_hint

    from machine.driver import State
    from machine.process import pid_alive

    if not driver._disks():
        raise DriverError(f"Machine {driver.ctx.name!r} has no disks", "Create it first (or remove and recreate it).")
    state = driver.status()
    if state == State.PAUSED:
        qmp.command(driver._qmp_address(), "cont", 2.0)
        return
    if state == State.STOPPING and qmp.query_status(driver._qmp_address(), 2.0) == "postmigrate":
        # a suspend that was interrupted after qemu wrote the state: the guest is still in this qemu, run it on
        (driver.dir / machinedir.SAVED_STATE_PART).unlink(missing_ok=True)
        qmp.command(driver._qmp_address(), "cont", 2.0)
        return
    if driver._pid() is not None:
        return  # running, starting or stopping: one qemu per machine
    qemu = find_qemu()
    if not qemu:
        raise DriverError("qemu-system was not found", install_hint())
    choice = str(driver.opt("accel") or "auto")
    if choice == "auto" or driver.data.get("accel") != choice:  # `machine set` may have changed it
        _choose_accel(driver)
    _free_ports(driver)
    sock = qmp.socket_path(driver.dir)
    if not driver.data.get("qmp"):
        sock.unlink(missing_ok=True)
    spec = vm_spec(driver, qemu)
    from dataclasses import replace

    from . import savedstate, sharing

    restoring = savedstate.has_state(driver)  # resume: load the saved state instead of booting
    spec = replace(spec, incoming=restoring, **sharing.spec_fields(driver))  # starts virtiofsd for virtiofs
    qlog = driver._path(machinedir.QEMU_LOG)
    qlog.unlink(missing_ok=True)
    try:
        pid = process.spawn(cmdline.build_args(spec), log_file=qlog, cwd=driver.dir)
    except BaseException:
        sharing.stop_daemons(driver)
        raise
    driver._path(machinedir.QEMU_PID).write_text(f"{pid}\n")
    driver.data["pid_file"] = machinedir.QEMU_PID  # for machine.cheapstate: env/config/url tell a stopped machine
    driver.data["started_at"] = time.time()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            err = qlog.read_text(errors="replace").strip() if qlog.exists() else ""
            driver._path(machinedir.QEMU_PID).unlink(missing_ok=True)
            sharing.stop_daemons(driver)
            raise DriverError(f"qemu exited at once: {err[-800:] or 'no output'}",
                              "Run with -D to see the qemu command line.")
        try:
            qmp.query_status(spec.qmp, 1.0)
        except (qmp.QMPError, OSError, EOFError, MachineError):
            time.sleep(0.05)
            continue
        if restoring:
            try:
                savedstate.incoming(driver)
            except MachineError:
                driver.stop(force=True)
                raise
        return
