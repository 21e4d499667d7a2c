"""Domain and network XML for the libvirt driver, rendered from templates/libvirt/*.j2 (jinja2 with
autoescape, so names and paths cannot break the XML).

User-mode networking goes through `<qemu:commandline>`: Debian 12's libvirt has no passt, and
`<interface type='user'>` cannot set restrict=on or host forwards. The NIC gets an explicit PCI
slot (0x10) so it cannot collide with the slots libvirt assigns to its own devices.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from machine.drivers.qemu.kvmprobe import TCG_TB_CACHE_MIB

USER_NIC_SLOT = "0x10"
TB_CACHE_MIB = TCG_TB_CACHE_MIB


@dataclass(frozen=True)
class Disk:
    path: str
    target: str  # vda, sda, ...
    device: str = "disk"  # disk | cdrom
    bus: str = "virtio"  # virtio | sata | ide
    format: str = "qcow2"  # qcow2 | raw
    readonly: bool = False


@dataclass(frozen=True)
class DomainSpec:
    name: str  # libvirt domain name
    machine: str  # our machine name
    machine_dir: str
    virt_type: str  # "kvm" or "qemu" (TCG)
    memory_mib: int
    cpus: int
    console_log: str
    disks: tuple[Disk, ...] = ()
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    boot_dev: str = "hd"  # without a kernel: hd | cdrom
    network: str | None = None  # a libvirt network name (None: user-mode networking)
    mac: str | None = None
    qemu_args: tuple[str, ...] = ()
    tb_cache_mib: int | None = TB_CACHE_MIB


@cache
def _environment() -> Any:
    from machine import packagedata

    return packagedata.templates("libvirt", autoescape=True)  # these templates are XML: escape everything


def render_domain(spec: DomainSpec) -> str:
    if spec.virt_type not in ("kvm", "qemu"):
        raise ValueError(f"virt_type must be kvm or qemu, not {spec.virt_type!r}")
    return _environment().get_template("domain.xml.j2").render(d=spec)


def render_network(name: str, bridge: str, subnet_third_octet: int) -> str:
    """A NAT network 192.168.<octet>.0/24 with DHCP for .2-.254."""
    base = f"192.168.{subnet_third_octet}"
    n = {"name": name, "bridge": bridge, "gateway": f"{base}.1", "netmask": "255.255.255.0",
         "dhcp_start": f"{base}.2", "dhcp_end": f"{base}.254"}
    return _environment().get_template("network.xml.j2").render(n=n)


def user_net_args(ssh_port: int, engine_host_port: int, engine_guest_port: int, mac: str,
                  restrict: bool = True) -> tuple[str, ...]:
    """qemu arguments for a user-mode NIC whose SSH and engine ports are forwarded from 127.0.0.1."""
    netdev = "user,id=n0"
    if restrict:
        netdev += ",restrict=on"
    netdev += f",hostfwd=tcp:127.0.0.1:{int(ssh_port)}-:22"
    netdev += f",hostfwd=tcp:127.0.0.1:{int(engine_host_port)}-:{int(engine_guest_port)}"
    device = f"virtio-net-pci,netdev=n0,mac={mac},bus=pci.0,addr={USER_NIC_SLOT}"
    return ("-netdev", netdev, "-device", device)


def random_mac(rng: random.Random | None = None) -> str:
    """A MAC in qemu's locally administered 52:54:00 range."""
    r = rng or random.SystemRandom()
    return "52:54:00:" + ":".join(f"{r.randrange(256):02x}" for _ in range(3))


def interface_macs(domain_xml: str) -> list[str]:
    """The MAC addresses of a defined domain's interfaces (libvirt fills them in when absent)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(domain_xml)
    return [m.get("address", "").lower() for m in root.findall("./devices/interface/mac") if m.get("address")]


def networks_of(domain_xml: str) -> list[str]:
    """The libvirt networks a domain's interfaces are attached to."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(domain_xml)
    return [s.get("network", "") for s in root.findall("./devices/interface[@type='network']/source")]


_FWD = re.compile(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-:(\d+)")


def rewrite_user_ports(domain_xml: str, ssh_port: int, engine_host_port: int) -> str:
    """The domain XML with its user-mode forwards moved to new host ports (guest port 22 gets
    `ssh_port`, the other forward `engine_host_port`)."""

    def repl(m: re.Match[str]) -> str:
        host = ssh_port if m.group(2) == "22" else engine_host_port
        return f"hostfwd=tcp:127.0.0.1:{int(host)}-:{m.group(2)}"

    return _FWD.sub(repl, domain_xml)


_MEMORY = re.compile(r"<(memory|currentMemory)(\s[^>]*)?>\s*\d+\s*</\1>")
_VCPU = re.compile(r"<vcpu(\s[^>]*)?>\s*\d+\s*</vcpu>")


def rewrite_resources(domain_xml: str, memory_mib: int, cpus: int) -> str:
    """The domain XML with its memory and vCPU count replaced (`machine set` on a stopped machine)."""
    xml = _MEMORY.sub(lambda m: f"<{m.group(1)} unit='MiB'>{int(memory_mib)}</{m.group(1)}>", domain_xml)
    return _VCPU.sub(f"<vcpu placement='static'>{int(cpus)}</vcpu>", xml)
