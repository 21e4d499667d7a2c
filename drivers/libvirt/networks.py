"""libvirt networks for the libvirt driver: the private NAT network it may create, and the guest's
address on a libvirt network (DHCP lease first, then the host's ARP table).

The `default` network, and any network we did not create, is never changed or removed.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .connection import import_libvirt, is_code
from .domainxml import networks_of, render_network

PRIVATE = "private"  # the --libvirt-network value asking for our own network
PRIVATE_NETWORK = "machine-private"
PRIVATE_BRIDGE = "virbr-machine"


def _network_subnets(conn: Any) -> list[ipaddress.IPv4Network]:
    nets = []
    for net in conn.listAllNetworks():
        try:
            root = ET.fromstring(net.XMLDesc(0))
        except ET.ParseError:
            continue
        for ip in root.findall("./ip"):
            addr, mask = ip.get("address"), ip.get("netmask") or ip.get("prefix")
            if addr and mask and ":" not in addr:
                nets.append(ipaddress.IPv4Network(f"{addr}/{mask}", strict=False))
    return nets


def _host_routes(route_file: Path = Path("/proc/net/route")) -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes (Linux), so our subnet does not shadow a LAN."""
    nets = []
    try:
        lines = route_file.read_text().splitlines()[1:]
    except OSError:
        return nets
    for line in lines:
        f = line.split()
        if len(f) < 8:
            continue
        dest = ipaddress.IPv4Address(bytes.fromhex(f[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(f[7])[::-1])
        if int(mask):
            nets.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return nets


def free_octet(taken: list[ipaddress.IPv4Network]) -> int:
    """The first N in 100..254 whose 192.168.N.0/24 overlaps no taken subnet."""
    for octet in range(100, 255):
        candidate = ipaddress.IPv4Network(f"192.168.{octet}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return octet
    raise RuntimeError("no free 192.168.N.0/24 subnet for the private network")


def ensure_private(conn: Any) -> str:
    """Our private NAT network, created and started when missing. Returns its name."""
    libvirt = import_libvirt()
    try:
        net = conn.networkLookupByName(PRIVATE_NETWORK)
    except libvirt.libvirtError as e:
        if not is_code(e, "VIR_ERR_NO_NETWORK"):
            raise
        octet = free_octet(_network_subnets(conn) + _host_routes())
        net = conn.networkDefineXML(render_network(PRIVATE_NETWORK, PRIVATE_BRIDGE, octet))
        net.setAutostart(True)
    if not net.isActive():
        net.create()
    return PRIVATE_NETWORK


def remove_private_if_unused(conn: Any, leaving_domain: str) -> bool:
    """Remove our private network when no domain other than `leaving_domain` uses it."""
    libvirt = import_libvirt()
    try:
        net = conn.networkLookupByName(PRIVATE_NETWORK)
    except libvirt.libvirtError as e:
        if is_code(e, "VIR_ERR_NO_NETWORK"):
            return False
        raise
    for dom in conn.listAllDomains(0):
        if dom.name() != leaving_domain and PRIVATE_NETWORK in networks_of(dom.XMLDesc(0)):
            return False
    if net.isActive():
        net.destroy()
    net.undefine()
    return True


def guest_ipv4(domain: Any, macs: list[str]) -> str | None:
    """The guest's IPv4 address on a libvirt network: the DHCP lease of one of `macs`, else ARP."""
    libvirt = import_libvirt()
    wanted = {m.lower() for m in macs}
    for source in ("VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE", "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP"):
        flag = getattr(libvirt, source, None)
        if flag is None:
            continue
        try:
            found = domain.interfaceAddresses(flag, 0) or {}
        except libvirt.libvirtError:
            continue
        for iface in found.values():
            if wanted and (iface.get("hwaddr") or "").lower() not in wanted:
                continue
            for addr in iface.get("addrs") or []:
                if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4 and addr.get("addr"):
                    return addr["addr"]
    return None
