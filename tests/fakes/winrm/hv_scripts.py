"""The driver's scripts as the fake Hyper-V host reads them: the known operations (parameters and
the cmdlets each body must use) and an independent parser for the `$Var = <literal>` parameter
block (PowerShell single-quoted strings with doubled quotes, integers, $true/$false/$null, @(...))."""

from __future__ import annotations

import re
from typing import Any

BEGIN, END = "##machine-json-begin##", "##machine-json-end##"
_QUOTES = "'\u2018\u2019\u201a\u201b"

# op -> (parameters, cmdlets the body must use)
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "check": ((), ("Get-Module -ListAvailable -Name Hyper-V", "S-1-5-32-578", "HypervisorPresent",
                   "Hyper-V\\Get-VMSwitch")),
    "vm-state": (("Name",), ("Hyper-V\\Get-VM -Name $Name",)),
    "start-vm": (("Name",), ("Hyper-V\\Start-VM -Name $Name",)),
    "stop-vm": (("Name", "TurnOff"), ("Hyper-V\\Stop-VM -Name $Name -TurnOff", "Hyper-V\\Stop-VM -Name $Name -Force")),
    "save-vm": (("Name",), ("Hyper-V\\Save-VM -Name $Name",)),
    "discard-saved-vm": (("Name",), ("Hyper-V\\Remove-VMSavedState -VMName $Name",)),
    "vm-ip": (("Name",), ("Hyper-V\\Get-VMNetworkAdapter -VMName $Name", "IPAddresses")),
    "remove-vm": (("Name", "Dir"), ("Hyper-V\\Remove-VM -VM $vm -Force", "machine.json", "$_.Path.StartsWith($Dir",
                                    "Remove-Item -LiteralPath $Dir")),
    "vm-dir": (("Name", "Base"), ("Get-VMHost", "machine.json")),
    "create-vm": (("Name", "Dir", "BootIso", "SeedIso", "DiskBytes", "MemoryBytes", "Cpus", "Switch", "VlanId", "Pipe"),
                  ("Hyper-V\\New-VHD -Path $vhd -SizeBytes $DiskBytes -Dynamic", "-Generation 1",
                   "Set-VMMemory -VM $vm -DynamicMemoryEnabled $false", "Set-VMProcessor -VM $vm -Count $Cpus",
                   "Set-VMDvdDrive", "Add-VMDvdDrive", "Set-VMComPort -VM $vm -Number 1 -Path $Pipe",
                   "Set-VMNetworkAdapterVlan")),
    "smb-account": (("Account", "Password", "Prefix", "Switch"),
                    ("ConvertTo-SecureString -String $Password -AsPlainText -Force", "Set-LocalUser -Name $Account",
                     "New-LocalUser -Name $Account -Password $secure", "Remove-SmbShare -Name $old.Name -Force",
                     "$_.Name.StartsWith($Prefix", "PurgeAccessRules",
                     "Get-NetIPAddress -AddressFamily IPv4 -InterfaceAlias \"vEthernet ($Switch)\"")),
    "smb-share": (("Account", "Name", "Path", "ReadOnly"),
                  ("Test-Path -LiteralPath $Path -PathType Container",
                   "System.Security.AccessControl.FileSystemAccessRule($principal, $rights",
                   "'ReadAndExecute'", "'Modify'", "Set-Acl -LiteralPath $Path -AclObject $acl",
                   "New-SmbShare -Name $Name -Path $Path -ReadAccess $principal",
                   "New-SmbShare -Name $Name -Path $Path -ChangeAccess $principal")),
    "smb-unshare": (("Account", "Prefix"), ("Get-SmbShare", "$_.Name.StartsWith($Prefix", "PurgeAccessRules",
                                            "Remove-SmbShare -Name $old.Name -Force",
                                            "Remove-LocalUser -Name $Account")),
    "iso-probe": (("Path", "Sha256"), ("Get-FileHash -LiteralPath $Path -Algorithm SHA256",)),
    "iso-chunk": (("Path", "Offset", "Data"), ("[Convert]::FromBase64String($Data)", "'Append'")),
    "iso-stream": (("Path", "Offset"), ("foreach ($line in $input)", "[Convert]::FromBase64String($line)", "'Append'")),
    "iso-finish": (("Path", "Sha256"), ("Get-FileHash -LiteralPath $part -Algorithm SHA256", "Move-Item")),
    "iso-download": (("Url", "Path", "Sha256"), ("Invoke-WebRequest -Uri $Url -OutFile $part",
                                                 "Get-FileHash -LiteralPath $part -Algorithm SHA256")),
}


class ScriptRejected(Exception):
    """The fake does not know this script."""


class PSError(Exception):
    """An error record as the script's catch block would report it."""

    def __init__(self, message: str, category: str, fqid: str) -> None:
        super().__init__(message)
        self.record = {"message": message, "category": category, "id": fqid}


# -- PowerShell literals (independent of the driver's quoting code) -----------------------------------


def parse_literal(text: str, pos: int) -> tuple[Any, int]:
    """Parse one literal at text[pos:]; returns (value, next position)."""
    if text.startswith("$true", pos):
        return True, pos + 5
    if text.startswith("$false", pos):
        return False, pos + 6
    if text.startswith("$null", pos):
        return None, pos + 5
    if text.startswith("@(", pos):
        items: list[Any] = []
        pos += 2
        while not text.startswith(")", pos):
            value, pos = parse_literal(text, pos)
            items.append(value)
            if text.startswith(", ", pos):
                pos += 2
        return items, pos + 1
    if pos < len(text) and text[pos] in _QUOTES:
        out = []
        i = pos + 1
        while True:
            if i >= len(text):
                raise ScriptRejected("unterminated string literal")
            c = text[i]
            if c in _QUOTES:
                if i + 1 < len(text) and text[i + 1] in _QUOTES:
                    out.append(c)
                    i += 2
                    continue
                return "".join(out), i + 1
            out.append(c)
            i += 1
    m = re.compile(r"-?\d+").match(text, pos)
    if m:
        return int(m.group()), m.end()
    raise ScriptRejected(f"not a literal at: {text[pos:pos + 40]!r}")


def parse_script(script: str) -> tuple[str, dict[str, Any], str]:
    """(op, parameters, body) of a driver script; ScriptRejected when it is not one."""
    m = re.match(r"# machine-op: ([a-z0-9-]+)\n", script)
    if not m or m.group(1) not in OPS:
        raise ScriptRejected("unknown script (no known '# machine-op:' first line)")
    op, pos, params = m.group(1), m.end(), {}
    while not script.startswith("# machine-params-end\n", pos):
        pm = re.compile(r"\$([A-Za-z0-9]+) = ").match(script, pos)
        if not pm:
            raise ScriptRejected(f"bad parameter line at {script[pos:pos + 40]!r}")
        value, pos = parse_literal(script, pm.end())
        if not script.startswith("\n", pos):
            raise ScriptRejected(f"trailing text after ${pm.group(1)}")
        params[pm.group(1)] = value
        pos += 1
    body = script[pos:]
    wanted, cmdlets = OPS[op]
    if tuple(params) != wanted:
        raise ScriptRejected(f"{op}: parameters {list(params)} != {list(wanted)}")
    for cmdlet in cmdlets:
        if cmdlet not in body:
            raise ScriptRejected(f"{op}: body lacks {cmdlet!r}")
    if "{{" in body or "{%" in body:
        raise ScriptRejected("unrendered template text")
    if "Out-Result" not in body or BEGIN not in body:
        raise ScriptRejected("no result markers")
    return op, params, body
