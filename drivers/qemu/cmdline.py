"""The qemu command line for one machine, built from a plain description (`VMSpec`).

Pure: no files are touched and nothing is run, so every accelerator / host OS / image kind
combination is unit-tested by building arguments alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from machine.drivers.qemu.kvmprobe import TCG_TB_CACHE_MIB

# Flags whose value we set ourselves; a manifest's recommended args may replace them.
OWN_FLAGS = ("-machine", "-M", "-cpu")


@dataclass(frozen=True)
class VMSpec:
    name: str
    qemu: str
    platform: str  # sys.platform style: linux, darwin, win32
    arch: str  # x86_64 | aarch64
    accel: str  # kvm | tcg | hvf | whpx
    cpus: int
    memory_mib: int
    console_log: Path
    qmp: str  # "unix:/path" or "tcp:127.0.0.1:PORT"
    ssh_port: int
    engine_host_port: int
    engine_guest_port: int = 2376
    restrict_network: bool = True
    host_address: str = "127.0.0.1"  # where the SSH and engine forwards listen on the host
    # direct kernel boot (the machine OS)
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""
    os_iso: Path | None = None
    # disk boot (cloud images): the qcow2 overlay
    root_disk: Path | None = None
    firmware: Path | None = None  # UEFI code for aarch64 disk boot
    data_disk: Path | None = None
    seed: Path | None = None
    # a second NIC on a cluster's userspace switch (Swarm): VDE socket dir and MAC
    cluster_switch: str | None = None
    cluster_mac: str | None = None
    # shared folders: virtiofs (tag, vhost-user socket of its virtiofsd) or 9p (tag, host folder, read-only)
    virtiofs: tuple[tuple[str, str], ...] = ()
    ninep: tuple[tuple[str, str, bool], ...] = ()
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    # resume from a saved state: qemu waits for `migrate-incoming` (-incoming defer) instead of booting
    incoming: bool = False


def escape(value: object) -> str:
    """A value inside a qemu -opt list: commas are doubled."""
    return str(value).replace(",", ",,")


def accel_args(accel: str, arch: str, platform: str) -> list[str]:
    """-accel and -cpu for an accelerator."""
    if accel == "tcg":
        return ["-accel", f"tcg,tb-size={TCG_TB_CACHE_MIB}", "-cpu", "max"]
    if accel in ("kvm", "hvf"):
        return ["-accel", accel, "-cpu", "host"]
    if accel == "whpx":
        return ["-accel", "whpx,kernel-irqchip=off", "-cpu", "max"]
    raise ValueError(f"unknown accelerator {accel!r}")


def machine_type(spec: VMSpec) -> str:
    if spec.arch == "aarch64":
        return "virt,highmem=off" if spec.platform == "darwin" and spec.accel == "hvf" else "virt"
    return "q35"


def _drive(path: Path, ident: str, fmt: str, serial: str, readonly: bool = False) -> list[str]:
    opts = f"file={escape(path)},if=none,id={ident},format={fmt}"
    opts += ",readonly=on" if readonly else ",discard=unmap"
    return ["-drive", opts, "-device", f"virtio-blk-pci,drive={ident},serial={serial}"]


def network_args(spec: VMSpec) -> list[str]:
    forwards = [
        f"hostfwd=tcp:{spec.host_address}:{spec.ssh_port}-:22",
        f"hostfwd=tcp:{spec.host_address}:{spec.engine_host_port}-:{spec.engine_guest_port}",
    ]
    netdev = ",".join(["user", "id=n0", *(["restrict=on"] if spec.restrict_network else []), *forwards])
    args = ["-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"]
    if spec.cluster_switch:
        mac = f",mac={spec.cluster_mac}" if spec.cluster_mac else ""
        args += ["-netdev", f"vde,id=n1,sock={escape(spec.cluster_switch)}",
                 "-device", f"virtio-net-pci,netdev=n1{mac}"]
    return args


def share_args(spec: VMSpec) -> list[str]:
    """Shared folders. virtiofs needs the guest RAM as shared memory (memfd) for virtiofsd to map it."""
    args: list[str] = []
    if spec.virtiofs:
        args += ["-object", f"memory-backend-memfd,id=mem,size={spec.memory_mib}M,share=on",
                 "-numa", "node,memdev=mem"]
        for i, (tag, sock) in enumerate(spec.virtiofs):
            args += ["-chardev", f"socket,id=vfs{i},path={escape(sock)}",
                     "-device", f"vhost-user-fs-pci,chardev=vfs{i},tag={escape(tag)},queue-size=1024"]
    for i, (tag, host, ro) in enumerate(spec.ninep):
        fsdev = f"local,id=fs{i},path={escape(host)},security_model=none" + (",readonly=on" if ro else "")
        args += ["-fsdev", fsdev, "-device", f"virtio-9p-pci,fsdev=fs{i},mount_tag={escape(tag)}"]
    return args


def qmp_args(qmp: str) -> list[str]:
    return ["-qmp", f"{qmp},server=on,wait=off"]


def build_args(spec: VMSpec) -> list[str]:
    """The full argv (binary first)."""
    extra = list(spec.extra_args)
    args = [spec.qemu, "-name", escape(f"machine-{spec.name}"), "-nodefaults", "-no-user-config",
            "-display", "none"]
    if not any(f in extra for f in ("-machine", "-M")):
        args += ["-machine", machine_type(spec)]
    accel = accel_args(spec.accel, spec.arch, spec.platform)
    if "-cpu" in extra:
        accel = accel[:2]
    args += accel
    args += ["-smp", str(spec.cpus), "-m", str(spec.memory_mib)]
    args += share_args(spec)
    if spec.kernel:
        args += ["-kernel", str(spec.kernel)]
        if spec.initrd:
            args += ["-initrd", str(spec.initrd)]
        if spec.cmdline:
            args += ["-append", spec.cmdline]
    elif spec.firmware:
        args += ["-bios", str(spec.firmware)]
    if spec.root_disk:
        args += _drive(spec.root_disk, "root", "qcow2", "machine-root")
    if spec.os_iso:
        args += _drive(spec.os_iso, "os", "raw", "machine-os", readonly=True)
    if spec.data_disk:
        args += _drive(spec.data_disk, "data", "qcow2", "machine-data")
    if spec.seed:
        args += _drive(spec.seed, "seed", "raw", "cidata", readonly=True)
    args += network_args(spec)
    args += ["-device", "virtio-rng-pci"]
    args += ["-chardev", f"file,id=console,path={escape(spec.console_log)}", "-serial", "chardev:console"]
    args += qmp_args(spec.qmp)
    if spec.incoming:
        args += ["-incoming", "defer"]
    args += extra
    return args


def kernel_cmdline(base: str, hostname: str, arch: str) -> str:
    """The kernel command line: the image's recommended one plus our hostname (and a serial
    console when the image did not name one)."""
    parts = base.split()
    if not any(p.startswith("console=") for p in parts):
        parts.append("console=ttyAMA0" if arch == "aarch64" else "console=ttyS0")
    parts = [p for p in parts if not p.startswith("machine.hostname=")]
    parts.append(f"machine.hostname={hostname}")
    return " ".join(parts)
