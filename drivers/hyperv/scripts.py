"""PowerShell scripts for Hyper-V: render the templates in templates/hyperv/, encode them for
`powershell.exe -EncodedCommand`, and read the JSON each script prints between markers.

Every value reaches a script as a PowerShell literal (`ps_literal`): strings in single quotes
with quote characters doubled, numbers as digits, booleans as $true/$false. Templates cannot
forget to quote: the jinja2 environment's `finalize` hook applies it to every `{{ value }}`.
"""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from typing import Any

from machine import packagedata
from machine.errors import DriverError, HostNotUsable, MachineError, NotFound

BEGIN = "##machine-json-begin##"
END = "##machine-json-end##"
POWERSHELL_ARGS = ("-NoProfile", "-NonInteractive", "-EncodedCommand")
# What WinRM runs (cmd.exe line); the local runner passes the same flags as separate arguments.
REMOTE_PREFIX = "powershell.exe " + " ".join(POWERSHELL_ARGS) + " "
# cmd.exe / CreateProcess command lines longer than this fail ("The command line is too long.").
MAX_COMMAND_LINE = 8191
# PowerShell treats these as single quotes too; inside a single-quoted string each is doubled.
_QUOTES = "'\u2018\u2019\u201a\u201b"
_OP_RE = re.compile(r"^# machine-op: ([a-z0-9-]+)$", re.M)


def ps_literal(value: Any) -> str:
    """A PowerShell literal for value: never evaluated, whatever characters it holds."""
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "@(" + ", ".join(ps_literal(v) for v in value) + ")"
    text = str(value)
    if "\0" in text:
        raise DriverError("A value for a PowerShell script contains a NUL character", "Remove it from the option.")
    return "'" + "".join(c + c if c in _QUOTES else c for c in text) + "'"


@cache
def _environment() -> Any:
    return packagedata.templates("hyperv", finalize=ps_literal)  # every value becomes a PowerShell literal


def template_names() -> list[str]:
    """The operation templates (partials start with '_')."""
    return sorted(p.stem for p in packagedata.template_dir("hyperv").glob("*.ps1") if not p.name.startswith("_"))


def render(op: str, **values: Any) -> str:
    """The script for operation `op` with `values` filled in as literals."""
    script = _environment().get_template(f"{op}.ps1").render(**values)
    found = _OP_RE.search(script)
    if not found or found.group(1) != op:
        raise DriverError(f"Template {op}.ps1 lacks its '# machine-op: {op}' line", "Reinstall machine.")
    return script


def encode(script: str) -> str:
    """UTF-16LE base64, as powershell.exe -EncodedCommand wants it."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def command_line(script: str) -> str:
    """The full command line WinRM runs for script; DriverError if Windows would refuse its length."""
    line = REMOTE_PREFIX + encode(script)
    if len(line) > MAX_COMMAND_LINE:
        raise DriverError(f"PowerShell script {script_op(script)!r} is too long for a Windows command line "
                          f"({len(line)} > {MAX_COMMAND_LINE} characters)",
                          "Use shorter paths and names (--hyperv-vm-path, --hyperv-iso-host-path, "
                          "--hyperv-virtual-switch); Windows paths over 260 characters are not supported.")
    return line


def max_payload(op: str, **values: Any) -> int:
    """How many characters a value (the one left out of `values`, rendered as '') can add to
    script `op` and still fit the command line: each script character costs 8/3 encoded ones."""
    base = len(REMOTE_PREFIX + encode(render(op, **values)))
    return int((MAX_COMMAND_LINE - base) * 3 / 8) - 2


def script_op(script: str) -> str:
    found = _OP_RE.search(script)
    return found.group(1) if found else "?"


# -- results --------------------------------------------------------------------------------------


def clean_stderr(raw: str) -> str:
    """PowerShell over WinRM writes errors as CLIXML ('#< CLIXML' then <S S="Error"> lines)."""
    if not raw.startswith("#< CLIXML"):
        return raw.strip()
    parts = re.findall(r'<S S="Error">(.*?)</S>', raw, re.S)
    text = "".join(parts).replace("_x000D__x000A_", "\n")
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return text.strip()


def parse(op: str, stdout: str, stderr: str, returncode: int) -> Any:
    """The JSON a script printed between the markers; MachineError for error records."""
    start, end = stdout.rfind(BEGIN), stdout.rfind(END)
    if start < 0 or end < start:
        detail = clean_stderr(stderr) or stdout.strip() or f"exit code {returncode}"
        raise DriverError(f"Hyper-V operation {op} gave no result: {detail[-800:]}",
                          "Run with -D to see the script output; check that PowerShell works on the host.")
    result = json.loads(stdout[start + len(BEGIN):end])
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        raise error_from_record(op, result["error"])
    return result


_NOT_FOUND = re.compile(r"unable to find a virtual machine with name", re.I)


def error_from_record(op: str, record: dict[str, Any]) -> MachineError:
    """Map a PowerShell error record (message, category, FullyQualifiedErrorId) to a MachineError
    with a hint the user can act on."""
    message = str(record.get("message") or "unknown error").strip()
    category = str(record.get("category") or "")
    fqid = str(record.get("id") or "")
    text = f"Hyper-V {op} failed: {message}"
    if _NOT_FOUND.search(message):
        return NotFound(text, "The VM is gone from the Hyper-V host; remove the machine with 'machine rm -f NAME'.")
    if category == "PermissionDenied" or "UnauthorizedAccess" in fqid or "permission" in message.lower():
        return HostNotUsable(text, "Add the user to the 'Hyper-V Administrators' group on the host "
                                   "(Add-LocalGroupMember -Group 'Hyper-V Administrators' -Member USER), then sign in "
                                   "again.")
    if "CommandNotFoundException" in fqid or "is not recognized as the name of a cmdlet" in message:
        return HostNotUsable(text, "Install the Hyper-V PowerShell module: Enable-WindowsOptionalFeature -Online "
                                   "-FeatureName Microsoft-Hyper-V -All (then reboot).")
    if "hypervisor is not running" in message.lower():
        return HostNotUsable(text, "Enable virtualization (VT-x/AMD-V) in the firmware and make sure the hypervisor "
                                   "starts (bcdedit /set hypervisorlaunchtype auto, then reboot).")
    if "sha256 mismatch" in message:
        return DriverError(text, "The file on the host is not the expected ISO; check --hyperv-iso-url and "
                                 "--hyperv-iso-sha256.")
    if "switch" in message.lower() and category == "ObjectNotFound":
        return DriverError(text, "List the host's switches with Get-VMSwitch and pass one with "
                                 "--hyperv-virtual-switch.")
    return DriverError(text, f"PowerShell error {fqid or category}; run with -D for the full script output.")
