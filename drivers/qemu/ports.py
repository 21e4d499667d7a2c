"""The host address of the forwards: 127.0.0.1 unless the machine's `--qemu-host-address` says otherwise
(free ports on it: machine.hostports)."""

from __future__ import annotations

import ipaddress
import socket

HOST = "127.0.0.1"


class HostAddress(str):
    """A `--qemu-host-address` value: one IPv4 address of this host (not 0.0.0.0: the client and the
    server certificate need the address the engine is reached at)."""

    description = ("an IPv4 address of this host: a loopback address (127.0.0.0/8, e.g. 127.0.0.2) or one of "
                   "this host's own addresses (a LAN address)")

    def __new__(cls, raw: object) -> HostAddress:
        addr = ipaddress.IPv4Address(str(raw).strip())  # ValueError when it is not an IPv4 address
        if addr.is_unspecified or addr.is_multicast or not (addr.is_loopback or is_local(str(addr))):
            raise ValueError(str(raw))
        return super().__new__(cls, str(addr))


def is_local(address: str) -> bool:
    """True when this host has `address` (a socket can be bound to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


# -- forwards added while the VM runs (published container ports), through the human monitor ---------------

NETDEV = "n0"  # the user-mode netdev of every machine (qemu and libvirt user networking)


def hostfwd_add(proto: str, host_ip: str, host_port: int, guest_port: int, netdev: str = NETDEV) -> str:
    """The HMP command line adding a user-mode forward host_ip:host_port -> the guest's guest_port."""
    return f"hostfwd_add {netdev} {proto}:{host_ip}:{int(host_port)}-:{int(guest_port)}"


def hostfwd_remove(proto: str, host_ip: str, host_port: int, netdev: str = NETDEV) -> str:
    return f"hostfwd_remove {netdev} {proto}:{host_ip}:{int(host_port)}"


def hostfwd_error(command_line: str, output: str) -> str | None:
    """None when the monitor's answer to `command_line` means success, else the reason. hostfwd_add says
    nothing when it worked ("Could not set up host forwarding rule ..." otherwise); hostfwd_remove answers
    "host forwarding rule for ... removed" (or "not found", which counts as done)."""
    text = output.strip()
    if command_line.startswith("hostfwd_remove"):
        return None if (text.endswith("removed") or text.endswith("not found")) else (text or "no answer")
    return text or None


def restricted_udp_error(flag: str, fix: str) -> str:
    """Why a UDP forward cannot work on a restricted user network: libslirp drops every UDP datagram the guest
    sends (but DHCP/TFTP) when restrict=on, so replies never come back. Only a machine made or set with
    `FLAG on` is restricted (the default, auto, is not)."""
    return (f"UDP is not forwarded: the machine was given {flag} on (its user network's restrict=on drops the "
            f"guest's UDP replies); to forward UDP: {fix}")
