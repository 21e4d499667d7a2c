"""Driver `libvirt`: a libvirt domain (qemu or, when a probe boot shows it works, KVM) per machine,
through libvirt-python.

Networking: `user` (default) is qemu user-mode networking with SSH and the engine port forwarded
from 127.0.0.1 (passed through <qemu:commandline>, as Debian 12's libvirt has no passt); any other
value names a libvirt network (e.g. `default`), and `private` makes our own NAT network
`machine-private`, removed again with the last machine that uses it. See README.md here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from machine.drivers.qemu import kvmprobe
from machine.drivers.qemu.kvmprobe import TCG_TB_CACHE_MIB

from machine import hostports, machinedir, sizes
from machine.driver import PORTS_HYPERVISOR, PORTS_SSH, Availability, Driver, Features, Option, SSHEndpoint, State
from machine.errors import DriverError, MachineError

from . import connection as lv

DEFAULT_URI = "qemu:///system"
USER_NET = "user"


def is_local_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("qemu", "qemu+unix", "kvm") and not parts.netloc


class LibvirtDriver(Driver):
    name = "libvirt"
    description = "A libvirt (qemu/KVM) domain, through libvirt-python."
    features = Features(share_mechanisms=("virtiofs", "9p", "reverse-sftp"), port_forwarding=PORTS_HYPERVISOR,
                        saved_state=True)
    options = (
        Option("uri", "libvirt connection URI (qemu:///system, qemu:///session, ...)", DEFAULT_URI, allow_empty=False),
        sizes.cpus(settable=True),
        sizes.memory(1024, settable=True),
        sizes.disk("Size of the (sparse) disk"),
        Option("image", "Boot image: machine-os (default, built locally), a catalogue name (debian-12, ...), "
                        "an http(s) URL or a local file", "machine-os"),
        Option("network", "'user' (user-mode networking, ports forwarded on 127.0.0.1), a libvirt network name "
                          "(e.g. default), or 'private' (a NAT network machine creates)", USER_NET),
        Option("restrict", "User-mode networking only: cut the guest off from outside networks (restrict=on: no "
                           "docker pull, no UDP from published ports); auto (= off) gives every image outside "
                           "networks, as on Linux", "auto", choices=("auto", "on", "off")),
        Option("accel", "Acceleration: auto (KVM only when a probe boot works), kvm, or tcg", "auto",
               choices=("auto", "kvm", "tcg")),
        Option("tb-cache", "TCG translation cache in MiB (without KVM)", TCG_TB_CACHE_MIB, int, minimum=1,
               maximum=sizes.MAX_MEMORY_MIB),
        Option("storage-dir", "Folder for the machine's disks (default: the machine directory); must be "
                              "readable by the user libvirt runs qemu as", None),
    )

    # -- helpers ------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        return self.opt("uri") or DEFAULT_URI

    @property
    def domain_name(self) -> str:
        if "domain" not in self.data:
            digest = hashlib.sha256(str(Path(self.ctx.machine_dir).resolve()).encode()).hexdigest()[:8]
            self.data["domain"] = f"machine-{self.ctx.name}-{digest}"
        return self.data["domain"]

    @property
    def user_mode(self) -> bool:
        return (self.data.get("network") or self.opt("network") or USER_NET) == USER_NET

    def _conn(self) -> Any:
        return lv.connect(self.uri)

    def _domain(self) -> Any | None:
        """The libvirt domain, or None when it does not exist."""
        libvirt = lv.import_libvirt()
        conn = self._conn()
        try:
            return conn.lookupByName(self.domain_name)
        except libvirt.libvirtError as e:
            if lv.is_code(e, "VIR_ERR_NO_DOMAIN"):
                return None
            raise lv.operation_error(e, f"Looking up domain {self.domain_name}", self.uri) from None

    def _fail(self, e: Exception, what: str) -> MachineError:
        return lv.operation_error(e, f"{what} ({self.domain_name})", self.uri)

    def storage_dir(self) -> Path:
        custom = self.opt("storage_dir")
        return Path(custom).expanduser() / self.domain_name if custom else Path(self.ctx.machine_dir)

    # -- availability ---------------------------------------------------------------------------
    @classmethod
    def check_available(cls, options: dict[str, Any] | None = None) -> Availability:
        uri = (options or {}).get("uri") or DEFAULT_URI
        try:
            lv.import_libvirt()
        except MachineError as e:
            return Availability(False, e.message, e.hint)
        try:
            lv.connect(uri)
        except MachineError as e:
            return Availability(False, e.message, e.hint)
        if is_local_uri(uri) or urlsplit(uri).scheme == "test":
            from machine import process

            if not process.which("qemu-img"):
                return Availability(False, "qemu-img not found (it makes the machine's disks)",
                                    "Install it: apt install qemu-utils")
        if not is_local_uri(uri) and urlsplit(uri).scheme != "test":
            return Availability(False, f"Only local libvirt URIs are supported ({uri})",
                                "The disks are made on this host: use qemu:///system or qemu:///session.")
        return Availability(True, f"libvirt at {uri} is reachable")

    # -- acceleration ----------------------------------------------------------------------------
    def virt_type(self) -> tuple[str, str]:
        """("kvm" | "qemu", why)."""
        accel = self.opt("accel") or "auto"
        if accel == "tcg":
            return "qemu", "TCG requested (--libvirt-accel tcg)"
        if accel == "kvm":
            return "kvm", "KVM requested (--libvirt-accel kvm)"
        if not is_local_uri(self.uri):
            return "qemu", f"{self.uri} is not a local qemu URI: TCG"
        verdict = kvmprobe.kvm_verdict(self.ctx.cache_dir)
        return ("kvm" if verdict.usable else "qemu"), verdict.reason

    # -- lifecycle ------------------------------------------------------------------------------
    def create(self) -> None:
        if self._domain() is not None:
            return
        from . import bootplan
        from .domainxml import DomainSpec, random_mac, render_domain, user_net_args

        libvirt = lv.import_libvirt()
        conn = self._conn()
        network = self.opt("network") or USER_NET
        libvirt_net = None
        if network != USER_NET:  # checked first: a missing network fails before any disk is made
            libvirt_net = self._attach_network(conn, network)
        self.data["network"] = libvirt_net or USER_NET
        storage = self.storage_dir()
        if self.opt("storage_dir"):
            self.data["storage_dir"] = str(storage)
        plan = bootplan.plan(self.opt("image"), name=self.ctx.name, storage=storage, seed_path=self.ctx.seed_path,
                             disk_size_mb=int(self.opt("disk_size") or sizes.DEFAULT_DISK_MIB),
                             cache_dir=self.ctx.cache_dir)
        self.data.update(made=plan.made, ssh_user=plan.ssh_user, image=plan.image, uri=self.uri,
                         guest_share_fs=plan.guest_share_fs)
        mac = self.data.setdefault("mac", random_mac())
        virt_type, why = self.virt_type()
        self.data.update(virt_type=virt_type, accel_reason=why)
        qemu_args: tuple[str, ...] = ()
        if libvirt_net is None:
            self.data.setdefault("ssh_port", hostports.free_port())
            self.data.setdefault("engine_host_port", hostports.free_port())
            qemu_args = user_net_args(self.data["ssh_port"], self.data["engine_host_port"], self.ctx.engine_port, mac,
                                      restrict=self.opt("restrict") == "on")
        spec = DomainSpec(
            name=self.domain_name, machine=self.ctx.name, machine_dir=str(self.ctx.machine_dir),
            virt_type=virt_type, memory_mib=int(self.opt("memory") or 1024), cpus=int(self.opt("cpus") or 2),
            console_log=str(self.console_log()), disks=tuple(plan.disks), kernel=plan.kernel,
            initrd=plan.initrd, cmdline=plan.cmdline, boot_dev=plan.boot_dev, network=libvirt_net,
            mac=mac if libvirt_net else None, qemu_args=qemu_args,
            tb_cache_mib=int(self.opt("tb_cache") or TCG_TB_CACHE_MIB),
        )
        try:
            conn.defineXML(self._with_shares(render_domain(spec)))
        except libvirt.libvirtError as e:
            raise self._fail(e, "Defining the domain") from None

    def _with_shares(self, xml: str) -> str:
        """The domain XML with the machine's shared folders (mechanism chosen here, recorded in data)."""
        from machine.shares import mechanisms

        from .sharesxml import with_shares

        chosen = mechanisms.pick(self.ctx.name, self.features.share_mechanisms, self.ctx.shares,
                                 self.ctx.share_mechanism, self.data.get("guest_share_fs"))
        self.data["share_mechanism"] = chosen
        device = chosen if chosen and chosen not in mechanisms.HOST_SERVED else None
        return with_shares(xml, self.ctx.shares if device else [], device, mechanisms.find_virtiofsd())

    def _apply_shares(self, dom: Any) -> None:
        """Redefine the stopped domain when `machine set` changed its shares (or the mechanism changed)."""
        from .sharesxml import shares_of

        xml = dom.XMLDesc(lv.import_libvirt().VIR_DOMAIN_XML_INACTIVE)
        wanted = self._with_shares(xml)
        if shares_of(wanted) != shares_of(xml):
            self._conn().defineXML(wanted)

    def _attach_network(self, conn: Any, network: str) -> str:
        from . import networks

        libvirt = lv.import_libvirt()
        try:
            if network == networks.PRIVATE:
                name = networks.ensure_private(conn)
                self.data["created_network"] = name
                return name
            net = conn.networkLookupByName(network)
            if not net.isActive():
                raise DriverError(f"libvirt network {network!r} is not active",
                                  f"Start it: virsh -c {self.uri} net-start {network}")
            return network
        except libvirt.libvirtError as e:
            raise self._fail(e, f"Using libvirt network {network!r}") from None

    def start(self) -> None:
        libvirt = lv.import_libvirt()
        dom = self._domain()
        if dom is None:
            raise DriverError(f"Domain {self.domain_name} does not exist",
                              f"Remove the machine and create it again: machine rm -f {self.ctx.name}")
        try:
            state, _ = dom.state()
            if state in (lv.PAUSED, lv.PMSUSPENDED):
                dom.resume() if state == lv.PAUSED else dom.pMWakeup(0)
                return
            if dom.isActive():
                return
            if not dom.hasManagedSaveImage(0):  # a saved domain resumes with the devices it was saved with
                if self.user_mode:
                    self._refresh_ports(dom)
                self._apply_resources(dom)
                self._apply_shares(dom)
            try:
                Path(self.console_log()).write_bytes(b"")  # the readiness line must come from this boot
            except OSError:
                pass
            dom.create()
        except libvirt.libvirtError as e:
            raise self._fail(e, "Starting the domain") from None

    def _refresh_ports(self, dom: Any) -> None:
        """Pick new forwarded ports when the saved ones were taken while the machine was stopped."""
        ssh, eng = self.data.get("ssh_port"), self.data.get("engine_host_port")
        if ssh and eng and hostports.port_free(ssh) and hostports.port_free(eng):
            return
        from .domainxml import rewrite_user_ports

        self.data["ssh_port"], self.data["engine_host_port"] = hostports.free_port(), hostports.free_port()
        xml = rewrite_user_ports(dom.XMLDesc(lv.import_libvirt().VIR_DOMAIN_XML_INACTIVE), self.data["ssh_port"],
                                 self.data["engine_host_port"])
        self._conn().defineXML(xml)

    def _apply_resources(self, dom: Any) -> None:
        """Redefine the stopped domain when `machine set` changed its memory or vCPUs."""
        _, max_kib, _, cpus, _ = dom.info()
        want_mib, want_cpus = int(self.opt("memory") or 1024), int(self.opt("cpus") or 2)
        if (int(max_kib), int(cpus)) == (want_mib * 1024, want_cpus):
            return
        from .domainxml import rewrite_resources

        xml = dom.XMLDesc(lv.import_libvirt().VIR_DOMAIN_XML_INACTIVE)
        self._conn().defineXML(rewrite_resources(xml, want_mib, want_cpus))

    def stop(self, force: bool = False) -> None:
        libvirt = lv.import_libvirt()
        dom = self._domain()
        if dom is None:
            return
        try:
            if not dom.isActive():
                return
            if force:
                dom.destroy()
                return
            try:
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            except libvirt.libvirtError as e:
                if not lv.is_code(e, "VIR_ERR_INVALID_ARG", "VIR_ERR_NO_SUPPORT", "VIR_ERR_ARGUMENT_UNSUPPORTED"):
                    raise
                dom.shutdown()  # the hypervisor's own default method (e.g. the test driver)
        except libvirt.libvirtError as e:
            if lv.is_code(e, "VIR_ERR_OPERATION_INVALID") and not dom.isActive():
                return  # it stopped meanwhile
            raise self._fail(e, "Killing the domain" if force else "Shutting the domain down") from None

    # -- saved state (managed save: start restores it) ---------------------------------------------
    def saved_state_blocker(self) -> str:
        mechanism = str(self.data.get("share_mechanism") or "")
        if self.ctx.shares and mechanism in ("virtiofs", "9p"):
            return (f"libvirt cannot save the state of {self.ctx.name!r}: its shared folders use {mechanism}, which "
                    "qemu cannot migrate")
        return ""

    def save_state(self) -> None:
        """virDomainManagedSave: libvirt writes the memory to its own managed-save image and stops the domain
        (state shut off + a managed save image = Saved); the next virDomainCreate restores and drops it."""
        libvirt = lv.import_libvirt()
        dom = self._domain()
        if dom is None:
            raise DriverError(f"Domain {self.domain_name} does not exist", "Create the machine again.")
        try:
            dom.managedSave(0)
        except libvirt.libvirtError as e:
            raise self._fail(e, "Saving the domain's state") from None

    def discard_saved_state(self) -> None:
        libvirt = lv.import_libvirt()
        dom = self._domain()
        try:
            if dom is not None and not dom.isActive() and dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
        except libvirt.libvirtError as e:
            raise self._fail(e, "Removing the domain's saved state") from None

    def remove(self) -> None:
        libvirt = lv.import_libvirt()
        dom = self._domain()
        if dom is not None:
            try:
                if dom.isActive():
                    dom.destroy()
                flags = 0
                for flag in ("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
                             "VIR_DOMAIN_UNDEFINE_NVRAM", "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA"):
                    flags |= getattr(libvirt, flag, 0)
                try:
                    dom.undefineFlags(flags)
                except libvirt.libvirtError as e:
                    if not lv.is_code(e, "VIR_ERR_INVALID_ARG", "VIR_ERR_NO_SUPPORT", "VIR_ERR_ARGUMENT_UNSUPPORTED"):
                        raise
                    dom.undefine()
            except libvirt.libvirtError as e:
                if not lv.is_code(e, "VIR_ERR_NO_DOMAIN"):
                    raise self._fail(e, "Removing the domain") from None
        for f in self.data.get("made", []):
            Path(f).unlink(missing_ok=True)
        self._remove_qemu_log()
        Path(self.console_log()).unlink(missing_ok=True)
        if self.data.get("storage_dir"):
            try:
                Path(self.data["storage_dir"]).rmdir()
            except OSError:
                pass
        if self.data.get("created_network"):
            from . import networks

            try:
                networks.remove_private_if_unused(self._conn(), self.domain_name)
            except libvirt.libvirtError as e:
                raise self._fail(e, "Removing the private network") from None

    def _remove_qemu_log(self) -> None:
        """libvirt keeps qemu's stderr per domain; with the domain gone it is ours to delete (best effort)."""
        if not is_local_uri(self.uri):
            return
        if urlsplit(self.uri).path.rstrip("/") == "/system" or os.geteuid() == 0:  # root's session is the system
            log = Path("/var/log/libvirt/qemu") / f"{self.domain_name}.log"
        else:
            log = Path.home() / ".cache" / "libvirt" / "qemu" / "log" / f"{self.domain_name}.log"
        try:
            log.unlink(missing_ok=True)
        except OSError:
            pass

    def status(self) -> State:
        libvirt = lv.import_libvirt()
        dom = self._domain()
        if dom is None:
            return State.NOT_CREATED
        try:
            state, _ = dom.state()
            saved = state == lv.SHUTOFF and bool(dom.hasManagedSaveImage(0))
        except libvirt.libvirtError as e:
            if lv.is_code(e, "VIR_ERR_NO_DOMAIN"):
                return State.NOT_CREATED
            raise self._fail(e, "Asking the domain's state") from None
        return lv.map_state(state, saved)

    # -- addresses --------------------------------------------------------------------------------
    def ip(self) -> str | None:
        if self.user_mode:
            return "127.0.0.1"
        from . import networks
        from .domainxml import interface_macs

        dom = self._domain()
        if dom is None or not dom.isActive():
            return None
        macs = interface_macs(dom.XMLDesc(0)) or [self.data.get("mac", "")]
        return networks.guest_ipv4(dom, macs)

    def ssh_endpoint(self) -> SSHEndpoint | None:
        if self.status() != State.RUNNING:
            return None
        user = self.data.get("ssh_user", "root")
        if self.user_mode:
            port = self.data.get("ssh_port")
            return SSHEndpoint("127.0.0.1", int(port), user) if port else None
        ip = self.ip()
        return SSHEndpoint(ip, 22, user) if ip else None

    def engine_address(self, guest_port: int) -> tuple[str, int] | None:
        if self.user_mode:
            if guest_port == self.ctx.engine_port and self.data.get("engine_host_port"):
                return ("127.0.0.1", int(self.data["engine_host_port"]))
            if guest_port == 22 and self.data.get("ssh_port"):
                return ("127.0.0.1", int(self.data["ssh_port"]))
            return None
        ip = self.ip()
        return (ip, guest_port) if ip else None

    def console_log(self) -> Path | None:
        return Path(self.ctx.machine_dir) / machinedir.CONSOLE_LOG

    # -- published ports --------------------------------------------------------------------------
    def port_forward_path(self) -> str:
        """User networking: NAT rules in qemu's monitor; on a libvirt network the guest has its own address,
        which the host must not be sent to (SSH relay instead)."""
        return PORTS_HYPERVISOR if self.user_mode else PORTS_SSH

    def _hostfwd(self, command_line: str) -> None:
        from machine.drivers.qemu import ports

        libvirt = lv.import_libvirt()
        import libvirt_qemu

        dom = self._domain()
        if dom is None:
            raise DriverError(f"Domain {self.domain_name} does not exist", "Is the machine running?")
        try:
            output = libvirt_qemu.qemuMonitorCommand(dom, command_line,
                                                     libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
        except libvirt.libvirtError as e:
            raise self._fail(e, command_line) from None
        error = ports.hostfwd_error(command_line, str(output or ""))
        if error:
            raise DriverError(f"qemu refused {command_line!r}: {error}", "Is the host port free?")

    def forward_port(self, proto: str, host_ip: str, host_port: int, guest_port: int) -> None:
        from machine.drivers.qemu import ports

        if proto == "udp":
            dom = self._domain()
            if dom is not None and "restrict=on" in dom.XMLDesc(0):
                raise DriverError(ports.restricted_udp_error("--libvirt-restrict", "recreate the machine without it"),
                                  "Forward TCP only, or recreate the machine with --libvirt-restrict off (or auto).")
        self._hostfwd(ports.hostfwd_add(proto, host_ip, host_port, guest_port))

    def unforward_port(self, proto: str, host_ip: str, host_port: int) -> None:
        from machine.drivers.qemu import ports

        self._hostfwd(ports.hostfwd_remove(proto, host_ip, host_port))


DRIVER = LibvirtDriver
