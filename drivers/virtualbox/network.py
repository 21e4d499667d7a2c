"""VirtualBox networking: the host-only network for the engine address (reused or created, within
the ranges VirtualBox allows), its DHCP server and leases, and free local ports for NAT forwards."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from machine.errors import DriverError, UsageError

from .vbm import VBoxManage, parse_blocks

DEFAULT_CIDR = "192.168.56.1/24"
NETWORKS_CONF = Path("/etc/vbox/networks.conf")
DEFAULT_ALLOWED = (ipaddress.ip_network("192.168.56.0/21"),)
_CREATED = re.compile(r"Interface '([^']+)' was successfully created")


def allowed_ranges(version: tuple[int, int, int], platform: str | None = None,
                   conf: Path = NETWORKS_CONF) -> tuple[ipaddress.IPv4Network, ...] | None:
    """Host-only ranges VirtualBox accepts here; None when it accepts any (Windows, or < 6.1.28).
    /etc/vbox/networks.conf lines look like `* 10.0.0.0/8 192.168.0.0/16`."""
    if (platform or sys.platform) == "win32" or tuple(version) < (6, 1, 28):
        return None
    if not conf.is_file():
        return DEFAULT_ALLOWED
    ranges = []
    for line in conf.read_text(errors="replace").splitlines():
        words = line.split()
        if words[:1] == ["*"]:
            for w in words[1:]:
                try:
                    ranges.append(ipaddress.ip_network(w, strict=False))
                except ValueError:
                    continue
    return tuple(r for r in ranges if r.version == 4)


def host_interface(cidr: str, version: tuple[int, int, int], platform: str | None = None,
                   conf: Path = NETWORKS_CONF) -> ipaddress.IPv4Interface:
    """The host's address on the host-only network, e.g. 192.168.56.1/24, checked against the allowed ranges."""
    try:
        iface = ipaddress.IPv4Interface(cidr)
    except ValueError:
        raise UsageError(f"Invalid --virtualbox-hostonly-cidr {cidr!r}", "Use the host's address with a prefix, "
                         f"e.g. {DEFAULT_CIDR}.") from None
    if iface.ip == iface.network.network_address or iface.network.prefixlen > 29:
        raise UsageError(f"Invalid --virtualbox-hostonly-cidr {cidr!r}",
                         f"Give the host's address in a network of /29 or larger, e.g. {DEFAULT_CIDR}.")
    allowed = allowed_ranges(version, platform, conf)
    if allowed is not None and not any(iface.network.subnet_of(r) for r in allowed):
        ranges = ", ".join(str(r) for r in allowed) or "none"
        raise UsageError(f"VirtualBox on this host allows host-only networks only in {ranges}, not {iface.network}",
                         f"Pick an address inside them (default {DEFAULT_CIDR}) or list the range in {conf} "
                         "(e.g. '* 10.0.0.0/8 192.168.0.0/16').")
    return iface


def dhcp_range(iface: ipaddress.IPv4Interface) -> tuple[str, str, str]:
    """(server, lower, upper) as VirtualBox sets them for 192.168.56.1/24: .100, .101, .254."""
    net = iface.network
    hosts = list(net.hosts()) if net.num_addresses <= 1024 else None
    if hosts and len(hosts) >= 254:
        return str(net.network_address + 100), str(net.network_address + 101), str(hosts[-1])
    hosts = [h for h in net.hosts() if h != iface.ip]
    return str(hosts[0]), str(hosts[1]), str(hosts[-1])


def ensure_hostonly_if(vbm: VBoxManage, iface: ipaddress.IPv4Interface) -> str:
    """A host-only interface with the host address `iface` and a DHCP server: reuse or create it."""
    name = None
    for block in parse_blocks(vbm.run("list", "hostonlyifs")):
        if block.get("IPAddress") == str(iface.ip) and block.get("NetworkMask") == str(iface.netmask):
            name = block.get("Name")
            break
    if name is None:
        m = _CREATED.search(vbm.run("hostonlyif", "create"))
        if not m:
            raise DriverError("VBoxManage hostonlyif create did not name the new interface",
                              "Create one in VirtualBox's Network Manager and retry.")
        name = m.group(1)
        vbm.run("hostonlyif", "ipconfig", name, "--ip", str(iface.ip), "--netmask", str(iface.netmask))
    network = f"HostInterfaceNetworking-{name}"
    servers = {b.get("NetworkName"): b for b in parse_blocks(vbm.run("list", "dhcpservers"), start="NetworkName")}
    server, lower, upper = dhcp_range(iface)
    if network not in servers:
        vbm.run("dhcpserver", "add", f"--network={network}", f"--server-ip={server}", f"--netmask={iface.netmask}",
                f"--lower-ip={lower}", f"--upper-ip={upper}", "--enable")
    elif servers[network].get("Enabled") != "Yes":
        vbm.run("dhcpserver", "modify", f"--network={network}", "--enable")
    return name


def ensure_hostonly_net(vbm: VBoxManage, iface: ipaddress.IPv4Interface) -> str:
    """VirtualBox 7 on macOS: host-only networks (`hostonlynet`) replace host-only interfaces."""
    _, lower, upper = dhcp_range(iface)
    for block in parse_blocks(vbm.run("list", "hostonlynets")):
        low = block.get("LowerIP", "")
        if block.get("NetworkMask") == str(iface.netmask) and low and ipaddress.ip_address(low) in iface.network:
            return block["Name"]
    name = f"machine-{iface.network.network_address}"
    vbm.run("hostonlynet", "add", f"--name={name}", f"--netmask={iface.netmask}", f"--lower-ip={lower}",
            f"--upper-ip={upper}", "--enable")
    return name


def uses_hostonlynet(version: tuple[int, int, int], platform: str | None = None) -> bool:
    return (platform or sys.platform) == "darwin" and tuple(version) >= (7, 0, 0)


def vbox_home(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """VirtualBox's per-user folder (where VBoxNetDHCP keeps its leases)."""
    env = os.environ if environ is None else environ
    if env.get("VBOX_USER_HOME"):
        return Path(env["VBOX_USER_HOME"])
    plat = platform or sys.platform
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if plat == "darwin":
        return home / "Library" / "VirtualBox"
    if plat == "win32":
        return home / ".VirtualBox"
    legacy = home / ".VirtualBox"
    return legacy if legacy.is_dir() else home / ".config" / "VirtualBox"


def normalise_mac(mac: str) -> str:
    """`080027AB0C0D`, `08:00:27:ab:c:d` or `08-00-27-AB-0C-0D` -> `08:00:27:ab:0c:0d`."""
    mac = mac.strip().lower()
    parts = re.split(r"[:-]", mac) if (":" in mac or "-" in mac) else [mac[i:i + 2] for i in range(0, len(mac), 2)]
    return ":".join(p.zfill(2) for p in parts)


def lease_ip(leases_file: Path, mac: str) -> str | None:
    """The address VBoxNetDHCP leased to `mac` (its XML leases file, VirtualBox >= 6.1)."""
    try:
        root = ET.fromstring(leases_file.read_text(errors="replace"))
    except (OSError, ET.ParseError):
        return None
    want = normalise_mac(mac)
    found = None
    for lease in root.iter("Lease"):
        if normalise_mac(lease.get("mac", "")) != want:
            continue
        addr = lease.find("Address")
        if addr is not None and addr.get("value"):
            found = addr.get("value")
    return found


