"""What the `check` script reports about a Hyper-V host, and the decisions taken from it:
which pre-check fails (with its fix), which virtual switch to use, which address is the VM's."""

from __future__ import annotations

import ipaddress
from typing import Any

from machine.errors import UsageError


def host_problem(facts: dict[str, Any], where: str) -> tuple[str, str] | None:
    """(message, hint) for the first pre-check that fails, or None."""
    if not facts.get("module"):
        return (f"The Hyper-V PowerShell module is not installed on {where}",
                "Enable Hyper-V: Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V -All "
                "(Windows Server: Install-WindowsFeature -Name Hyper-V -IncludeManagementTools), then reboot.")
    if not (facts.get("hyperv_admin") or facts.get("admin")):
        user = facts.get("user") or "the user"
        return (f"{user} is neither in 'Hyper-V Administrators' nor an Administrator on {where}",
                f"Add-LocalGroupMember -Group 'Hyper-V Administrators' -Member '{user}', then sign in again.")
    if not facts.get("hypervisor"):
        return (f"The hypervisor is not running on {where}",
                "Enable virtualization (Intel VT-x / AMD-V) in the firmware, run "
                "'bcdedit /set hypervisorlaunchtype auto' and reboot.")
    return None


def choose_switch(switches: list[dict[str, Any]], wanted: str | None, remote: bool) -> str:
    names = [str(s.get("Name")) for s in switches]
    if wanted:
        if wanted not in names:
            raise UsageError(f"Virtual switch {wanted!r} not found on the Hyper-V host",
                             f"Switches there: {', '.join(names) or 'none'}.")
        return wanted
    external = [str(s["Name"]) for s in switches if str(s.get("SwitchType")) == "External"]
    if not remote and "Default Switch" in names:
        return "Default Switch"
    if external:
        return external[0]
    raise UsageError("No External virtual switch on the Hyper-V host" + ("" if remote else " and no 'Default Switch'"),
                     "Create one (New-VMSwitch -Name External -NetAdapterName 'Ethernet' -AllowManagementOS $true) "
                     "or name a switch with --hyperv-virtual-switch.")


def first_ipv4(addresses: list[str]) -> str | None:
    """The first IPv4 address that is not link-local (KVP lists IPv6 link-local addresses too)."""
    for text in addresses:
        try:
            ip = ipaddress.ip_address(str(text))
        except ValueError:
            continue
        if ip.version == 4 and not ip.is_link_local and not ip.is_unspecified:
            return str(ip)
    return None
