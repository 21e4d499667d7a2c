"""What should be forwarded, as plain data: the wanted forwards from the engine's container list and the guest's
listening sockets, and the difference to what is forwarded now. Pure (no sockets, no engine): unit-tested alone.

A forward is keyed by (protocol, host port): the host listens on the same port the guest publishes. Its `path`
says how it is carried: "hypervisor" (the driver's NAT rules: qemu/libvirt hostfwd, VirtualBox natpf) or "ssh"
(a relay over the machine's SSH connection to the guest's 127.0.0.1). A port published on the guest's loopback
(`-p 127.0.0.1:8080:80`) stays loopback-only: it is relayed over SSH (a NAT rule reaches the guest's own
address, not its loopback) and listens on a loopback address of the host even when the machine exposes its
ports on another address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from machine.driver import PORTS_HYPERVISOR as HYPERVISOR  # the driver's names for the forward paths
from machine.driver import PORTS_SSH as SSH

LOOPBACK = "127.0.0.1"
PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class Forward:
    proto: str  # tcp | udp
    host_ip: str  # where the host listens
    host_port: int
    guest_ip: str  # "" = the guest's own (NAT) address; "127.0.0.1" = the guest's loopback
    guest_port: int
    path: str  # HYPERVISOR | SSH

    @property
    def key(self) -> tuple[str, int]:
        return (self.proto, self.host_port)

    def describe(self) -> str:
        guest = f"{self.guest_ip or 'guest'}:{self.guest_port}"
        return f"{self.host_ip}:{self.host_port}/{self.proto} -> {guest} ({self.path})"


@dataclass
class Wanted:
    """One wanted forward and the containers that publish it (for `machine ports`)."""

    forward: Forward
    containers: list[str] = field(default_factory=list)
    # a reason it cannot be forwarded at all on this machine (e.g. UDP over the SSH relay)
    unsupported: str = ""


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def loopback_bind(address: str) -> str:
    """The host address a loopback-only forward listens on: the machine's address when it is a loopback one."""
    return address if is_loopback(address) else LOOPBACK


def forward_for(proto: str, guest_bind_ip: str, port: int, address: str, path: str) -> Forward:
    """The forward for a guest port bound on `guest_bind_ip` ("" / 0.0.0.0 / :: = every guest address)."""
    if guest_bind_ip and is_loopback(guest_bind_ip):
        return Forward(proto, loopback_bind(address), port, LOOPBACK, port, SSH)
    if path == SSH:
        return Forward(proto, address, port, LOOPBACK, port, SSH)
    return Forward(proto, address, port, "", port, HYPERVISOR)


def _add(wanted: dict[tuple[str, int], Wanted], fwd: Forward, source: str) -> None:
    have = wanted.get(fwd.key)
    if have is None:
        have = wanted[fwd.key] = Wanted(fwd)
        if fwd.path == SSH and fwd.proto == "udp":
            have.unsupported = "UDP cannot be carried by the SSH relay (TCP only)"
    elif have.forward != fwd and fwd.guest_ip != LOOPBACK:
        # the same port published on loopback and on every address (IPv4 + IPv6 lines): every address wins
        have.forward = fwd
    if source and source not in have.containers:
        have.containers.append(source)


def wanted_from_containers(containers: Iterable[Mapping[str, Any]], address: str, path: str
                           ) -> dict[tuple[str, int], Wanted]:
    """Wanted forwards from the engine's container list (`GET /containers/json`: Names, Ports with IP,
    PublicPort, Type). Only running containers are listed by the engine; ports without a PublicPort are exposed,
    not published, and are skipped."""
    wanted: dict[tuple[str, int], Wanted] = {}
    for c in containers:
        name = container_name(c)
        for p in c.get("Ports") or []:
            public = p.get("PublicPort")
            proto = str(p.get("Type") or "tcp")
            if not public or proto not in PROTOCOLS:
                continue
            ip = str(p.get("IP") or "")
            if ip in ("0.0.0.0", "::"):
                ip = ""
            _add(wanted, forward_for(proto, ip, int(public), address, path), name)
    return wanted


def container_name(c: Mapping[str, Any]) -> str:
    names = c.get("Names") or []
    if names:
        return str(names[0]).lstrip("/")
    return str(c.get("Id", ""))[:12]


def host_network_ids(containers: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{container id: name} of the running containers on the host network (`--network host`)."""
    out = {}
    for c in containers:
        mode = str((c.get("HostConfig") or {}).get("NetworkMode") or "")
        if mode == "host":
            out[str(c.get("Id", ""))] = container_name(c)
    return out


def add_listeners(wanted: dict[tuple[str, int], Wanted], listeners: Iterable[tuple[str, str, int, str]],
                  address: str, path: str) -> None:
    """Add the guest's listening sockets owned by host-network containers: (proto, bind ip, port, container)."""
    for proto, ip, port, name in listeners:
        if ip in ("0.0.0.0", "::"):
            ip = ""
        _add(wanted, forward_for(proto, ip, port, address, path), name)


@dataclass(frozen=True)
class Plan:
    add: list[Forward]
    remove: list[Forward]


def diff(current: Mapping[tuple[str, int], Forward], wanted: Mapping[tuple[str, int], Forward]) -> Plan:
    """What to remove (no longer wanted, or wanted differently) and add (wanted, not there) to get from the
    forwards there now to the wanted ones. Removals come first in the plan: a changed forward is removed
    before its replacement is added on the same host port."""
    remove = [f for k, f in current.items() if wanted.get(k) != f]
    add = [f for k, f in wanted.items() if current.get(k) != f]
    return Plan(add=sorted(add, key=lambda f: f.key), remove=sorted(remove, key=lambda f: f.key))


# -- the guest's listening sockets (/proc/net/tcp, tcp6, udp, udp6) -------------------------------------------

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def _hex_ip(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # IPv6: four 32-bit words, each in host (little-endian) byte order
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    addr = ipaddress.IPv6Address(words)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def parse_proc_net(text: str, proto: str) -> list[tuple[str, int, int]]:
    """Listening sockets in one /proc/net/{tcp,udp}[6] table: (bind ip, port, socket inode). TCP sockets in
    LISTEN; UDP sockets that are bound but not connected."""
    want = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
    out = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10 or parts[3] != want:
            continue
        ip_hex, _, port_hex = parts[1].partition(":")
        try:
            out.append((_hex_ip(ip_hex), int(port_hex, 16), int(parts[9])))
        except ValueError:
            continue
    return out


def socket_inodes(ls_output: str) -> set[int]:
    """Socket inodes in `ls -l /proc/PID/fd` output (`... 3 -> socket:[12345]`)."""
    found = set()
    for line in ls_output.splitlines():
        _, sep, rest = line.partition("socket:[")
        if sep:
            try:
                found.add(int(rest.split("]", 1)[0]))
            except ValueError:
                continue
    return found
