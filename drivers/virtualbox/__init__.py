"""Driver `virtualbox`: a VirtualBox VM driven through VBoxManage (VirtualBox >= 6.1).

The VM boots the machine OS ISO from a DVD drive on a PIIX4 IDE controller (Debian's cloud kernel in the
machine OS has ata_piix but no AHCI driver, so SATA would not find its disks), with a VDI data disk, the
NoCloud seed as a second DVD and its serial console written to `<machine dir>/console.log`. NIC 1 is NAT (virtio) with
forwards on 127.0.0.1 for SSH and the engine port; NIC 2 is on a host-only network so the engine also
has an address of its own. State always comes from `VBoxManage showvminfo --machinereadable`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, ClassVar

from machine import hostports, machinedir, sizes
from machine.driver import PORTS_HYPERVISOR, Availability, Driver, Features, Option, SSHEndpoint, State
from machine.errors import DriverError, HostNotUsable, ImageNotFound, MachineError

from . import network, vbm

STATES = {"running": State.RUNNING, "poweroff": State.STOPPED, "aborted": State.STOPPED, "saved": State.SAVED,
          "paused": State.PAUSED, "starting": State.STARTING, "restoring": State.STARTING,
          "stopping": State.STOPPING, "saving": State.STOPPING, "gurumeditation": State.ERROR,
          "stuck": State.ERROR, "aborted-saved": State.SAVED}
NIC_TYPES = ("virtio", "82540EM", "82543GC", "82545EM", "Am79C970A", "Am79C973")
CONTROLLER = "IDE"
SSH_USER = "root"


class VirtualBoxDriver(Driver):
    name = "virtualbox"
    description = "VirtualBox VM (VBoxManage, VirtualBox >= 6.1) booting the machine OS ISO."
    # reverse-sftp: the fallback the agent mounts over SSH (the Debian 12 machine OS has no vboxsf)
    features = Features(share_mechanisms=("vboxsf", "reverse-sftp"), port_forwarding=PORTS_HYPERVISOR,
                        saved_state=True)
    options = (
        sizes.cpus(aliases=("--virtualbox-cpu-count",), env_aliases=("VIRTUALBOX_CPU_COUNT",)),
        sizes.memory(2048, env_aliases=("VIRTUALBOX_MEMORY_SIZE",)),
        sizes.disk("Data disk size (a dynamically growing VDI)", 20000),
        Option("iso", "ISO to boot instead of the built machine OS (machine-os.iso)"),
        Option("hostonly-cidr", "Host address and prefix of the host-only network", default=network.DEFAULT_CIDR),
        Option("hostonly-nictype", "NIC type on the host-only network", default="virtio", choices=NIC_TYPES),
        Option("nat-nictype", "NIC type on the NAT network", default="virtio", choices=NIC_TYPES),
        Option("no-hostonly", "No host-only network: reach the engine only through 127.0.0.1 forwards",
               default=False, type=bool),
        Option("ui-type", "How VirtualBox shows the VM", default="headless", choices=("headless", "gui", "separate")),
    )
    # Injectable for tests of other platforms' paths.
    host_platform: ClassVar[str | None] = None

    # -- helpers --------------------------------------------------------------------------------
    @classmethod
    def _platform(cls) -> str:
        return cls.host_platform or sys.platform

    @classmethod
    def _vbm(cls) -> vbm.VBoxManage:
        path = vbm.find(platform=cls._platform())
        if not path:
            raise HostNotUsable("VBoxManage not found", vbm.install_hint())
        return vbm.VBoxManage(path)

    def _option(self, key: str) -> Any:
        opt = next(o for o in self.options if o.key == key)
        value = self.opt(key)
        return opt.default if value is None else opt.convert(self.name, value)

    def _info(self) -> dict[str, str] | None:
        uuid = self.data.get("uuid")
        if not uuid:
            return None
        try:
            return self._vbm().vminfo(uuid)
        except vbm.VBoxNotFound:
            return None

    def _iso(self) -> Path:
        given = self.opt("iso")
        if given:
            path = Path(given).expanduser()
        else:
            from machine.images.catalogue import default_image
            from machine.shares.mechanisms import image_filesystems

            image = default_image()
            path = image.iso or Path("machine-os.iso")
            self.data["guest_share_fs"] = image_filesystems(image.manifest)  # what its kernel mounts
        if not path.is_file():
            raise ImageNotFound(f"Boot ISO {path} not found",
                                "Build the machine OS (machine os build) or pass --virtualbox-iso PATH.")
        return path

    @property
    def _disk(self) -> Path:
        return self.ctx.machine_dir.resolve() / machinedir.VBOX_DISK

    # -- availability ---------------------------------------------------------------------------
    @classmethod
    def check_available(cls, options: dict[str, Any] | None = None) -> Availability:
        try:
            runner = cls._vbm()
            out = runner.run("--version", timeout=30, retries=0)
            if "vboxdrv kernel module is not loaded" in out:
                return Availability(False, "The VirtualBox kernel module (vboxdrv) is not loaded",
                                    "Run 'sudo /sbin/vboxconfig' (install your kernel's headers first).")
            version = vbm.parse_version(out)
            if not vbm.version_ok(version):
                return Availability(False, f"VirtualBox {'.'.join(map(str, version))} is too old",
                                    "Install VirtualBox 6.1 or newer.")
            opts = options or {}
            if not opts.get("no_hostonly"):
                network.host_interface(opts.get("hostonly_cidr") or network.DEFAULT_CIDR, version, cls._platform())
        except MachineError as e:
            return Availability(False, e.message, e.hint or vbm.install_hint())
        except OSError as e:
            return Availability(False, f"VBoxManage cannot run: {e}", vbm.install_hint())
        return Availability(True, f"VirtualBox {'.'.join(map(str, version))}")

    # -- lifecycle ------------------------------------------------------------------------------
    def create(self) -> None:
        if self._info() is not None:
            return
        iso = self._iso()
        runner = self._vbm()
        version = vbm.parse_version(runner.run("--version", retries=0))
        iface = None
        if not self._option("no_hostonly"):
            iface = network.host_interface(self._option("hostonly_cidr"), version, self._platform())
        name, mdir = self.ctx.name, self.ctx.machine_dir.resolve()  # VBoxSVC resolves relative paths its own way
        out = runner.run("createvm", "--name", name, "--ostype", "Linux_64", "--register", "--basefolder", mdir)
        m = re.search(r"^UUID:\s*(\S+)", out, re.M)
        if not m:
            raise DriverError(f"VBoxManage createvm printed no UUID: {out.strip()[:200]!r}",
                              "Run again with -D to see the VBoxManage output.")
        self.data.update(uuid=m.group(1), vm_name=name, ssh_port=hostports.free_port(),
                         engine_host_port=hostports.free_port())
        uuid = self.data["uuid"]
        console = mdir / machinedir.CONSOLE_LOG
        runner.run("modifyvm", uuid, "--cpus", self._option("cpus"), "--memory", self._option("memory"),
                   "--paravirtprovider", "default", "--acpi", "on", "--ioapic", "on", "--rtcuseutc", "on",
                   "--boot1", "dvd", "--boot2", "disk", "--boot3", "none", "--boot4", "none",
                   "--nic1", "nat", "--nictype1", self._option("nat_nictype"), "--cableconnected1", "on",
                   "--natdnshostresolver1", "on",
                   "--natpf1", f"ssh,tcp,127.0.0.1,{self.data['ssh_port']},,22",
                   "--natpf1", f"engine,tcp,127.0.0.1,{self.data['engine_host_port']},,{self.ctx.engine_port}",
                   "--uart1", "0x3F8", "4", "--uartmode1", "file", console)
        if iface is not None:
            nictype = self._option("hostonly_nictype")
            if network.uses_hostonlynet(version, self._platform()):
                net = network.ensure_hostonly_net(runner, iface)
                runner.run("modifyvm", uuid, "--nic2", "hostonlynet", "--host-only-net2", net, "--nictype2", nictype,
                           "--cableconnected2", "on")
            else:
                net = network.ensure_hostonly_if(runner, iface)
                runner.run("modifyvm", uuid, "--nic2", "hostonly", "--hostonlyadapter2", net, "--nictype2", nictype,
                           "--cableconnected2", "on")
            self.data["hostonly"] = net
        runner.run("storagectl", uuid, "--name", CONTROLLER, "--add", "ide", "--controller", "PIIX4",
                   "--bootable", "on")
        runner.run("createmedium", "disk", "--filename", self._disk, "--format", "VDI", "--variant", "Standard",
                   "--size", self._option("disk_size"))
        runner.run("storageattach", uuid, "--storagectl", CONTROLLER, "--port", "0", "--device", "0",
                   "--type", "dvddrive", "--medium", iso.resolve())
        runner.run("storageattach", uuid, "--storagectl", CONTROLLER, "--port", "1", "--device", "0",
                   "--type", "hdd", "--medium", self._disk)
        if self.ctx.seed_path:
            runner.run("storageattach", uuid, "--storagectl", CONTROLLER, "--port", "0", "--device", "1",
                       "--type", "dvddrive", "--medium", Path(self.ctx.seed_path).resolve())
        self._sync_shares(runner, uuid, {})

    def _sync_shares(self, runner: vbm.VBoxManage, uuid: str, info: dict[str, str]) -> None:
        """Make the VM's permanent shared folders named msh<N> exactly the machine's shares (the guest mounts
        each by that name with vboxsf), or none when the shares go over reverse-sftp. Only while the VM is powered
        off."""
        from machine.shares import mechanisms

        chosen = mechanisms.pick(self.ctx.name, self.features.share_mechanisms, self.ctx.shares,
                                 self.ctx.share_mechanism, self.data.get("guest_share_fs"))
        self.data["share_mechanism"] = chosen
        prefix = "SharedFolderNameMachineMapping"
        have = {v: info.get(k.replace("Name", "Path", 1), "") for k, v in info.items() if k.startswith(prefix)}
        want = {s["tag"]: s for s in self.ctx.shares} if chosen == mechanisms.VBOXSF else {}
        for name, path in have.items():
            if name.startswith("msh") and (name not in want or want[name]["host"] != path):
                runner.run("sharedfolder", "remove", uuid, f"--name={name}")
        for tag, share in want.items():
            if have.get(tag) != share["host"]:
                runner.run("sharedfolder", "add", uuid, f"--name={tag}", f"--hostpath={share['host']}",
                           *(["--readonly"] if share.get("ro") else []))

    def start(self) -> None:
        state = self.status()
        if state == State.RUNNING:
            return
        if state == State.NOT_CREATED:
            raise DriverError(f"VirtualBox VM {self.ctx.name!r} does not exist", "Remove and create the machine again.")
        runner = self._vbm()
        if state == State.PAUSED:
            runner.run("controlvm", self.data["uuid"], "resume")
            return
        self._sync_shares(runner, self.data["uuid"], self._info() or {})  # `machine set` may have changed them
        runner.run("startvm", self.data["uuid"], "--type", self._option("ui_type"), timeout=300)

    def stop(self, force: bool = False) -> None:
        if self.status() not in (State.RUNNING, State.PAUSED, State.STARTING, State.STOPPING):
            return
        try:
            self._vbm().run("controlvm", self.data["uuid"], "poweroff" if force else "acpipowerbutton")
        except DriverError as e:
            if "is not currently running" not in e.message:
                raise

    def save_state(self) -> None:
        """`controlvm savestate`: VirtualBox writes the memory and powers the VM off (VMState saved); the next
        startvm resumes it. VBoxManage returns when the state is on disk."""
        self._vbm().run("controlvm", self.data["uuid"], "savestate", timeout=600)

    def discard_saved_state(self) -> None:
        if self.status() == State.SAVED:
            self._vbm().run("discardstate", self.data["uuid"])

    def remove(self) -> None:
        uuid = self.data.get("uuid")
        if uuid and self._info() is not None:
            runner = self._vbm()
            self.stop(force=True)
            try:
                runner.run("unregistervm", uuid, "--delete", retries=10)
            except vbm.VBoxNotFound:
                pass
        if self._disk.exists():  # made but never attached (a create that failed half-way)
            try:
                self._vbm().run("closemedium", "disk", self._disk, "--delete", retries=0)
            except MachineError:
                self._disk.unlink(missing_ok=True)
        self.data.pop("uuid", None)

    def status(self) -> State:
        info = self._info()
        if info is None:
            return State.NOT_CREATED
        return STATES.get(info.get("VMState", ""), State.UNKNOWN)

    # -- addresses --------------------------------------------------------------------------------
    def _hostonly_ip(self, info: dict[str, str]) -> str | None:
        if not self.data.get("hostonly"):
            return None
        out = self._vbm().run("guestproperty", "get", self.data["uuid"], "/VirtualBox/GuestInfo/Net/1/V4/IP")
        m = re.match(r"Value:\s*(\S+)", out.strip())
        if m:
            return m.group(1)
        mac = info.get("macaddress2")
        if not mac:
            return None
        home = network.vbox_home(platform=self._platform())
        for leases in (home / f"HostInterfaceNetworking-{self.data['hostonly']}-Dhcpd.leases",
                       *home.glob("*-Dhcpd.leases")):
            ip = network.lease_ip(leases, mac)
            if ip:
                return ip
        return None

    def ip(self) -> str | None:
        info = self._info()
        if info is None or STATES.get(info.get("VMState", "")) != State.RUNNING:
            return None
        return self._hostonly_ip(info) or "127.0.0.1"

    def ssh_endpoint(self) -> SSHEndpoint | None:
        info = self._info()
        if info is None or STATES.get(info.get("VMState", "")) != State.RUNNING:
            return None
        fwd = vbm.forwards(info).get("ssh")
        port = fwd[1] if fwd else self.data.get("ssh_port")
        return SSHEndpoint(fwd[0] if fwd else "127.0.0.1", int(port), SSH_USER) if port else None

    def engine_address(self, guest_port: int) -> tuple[str, int] | None:
        info = self._info()
        if info is None or STATES.get(info.get("VMState", "")) != State.RUNNING:
            return None
        ip = self._hostonly_ip(info)
        if ip:
            return ip, guest_port
        for host, hport, gport in vbm.forwards(info).values():
            if gport == guest_port:
                return host, hport
        return None

    def console_log(self) -> Path | None:
        return self.ctx.machine_dir.resolve() / machinedir.CONSOLE_LOG

    # -- published ports: NAT rules on NIC 1 while the VM runs --------------------------------------
    @staticmethod
    def nat_rule_name(proto: str, host_port: int) -> str:
        return f"docker-{proto}-{int(host_port)}"

    def forward_port(self, proto: str, host_ip: str, host_port: int, guest_port: int) -> None:
        rule = f"{self.nat_rule_name(proto, host_port)},{proto},{host_ip},{int(host_port)},,{int(guest_port)}"
        self._vbm().run("controlvm", self.data["uuid"], "natpf1", rule, retries=2)

    def unforward_port(self, proto: str, host_ip: str, host_port: int) -> None:
        try:
            self._vbm().run("controlvm", self.data["uuid"], "natpf1", "delete", self.nat_rule_name(proto, host_port),
                            retries=2)
        except MachineError as e:
            if "does not exist" not in e.message:
                raise


DRIVER = VirtualBoxDriver
