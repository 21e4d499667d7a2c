"""Running VBoxManage: finding it, running it in the C locale, turning its errors into typed errors
with hints, retrying its transient errors, and parsing its output formats."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping, Sequence

from machine import process
from machine.errors import DriverError, HostNotUsable, MachineError, NotFound

MIN_VERSION = (6, 1)
RETRIES = 5
RETRY_DELAY = 0.3
# Errors VirtualBox gives while a session is being released (e.g. right after a power-off): retried.
TRANSIENT = ("The object is not ready", "is already locked for a session (or being unlocked)",
             "The object functionality is limited", "while it is locked", "is locked for reading by another task",
             "is locked for writing by another task")
NOT_FOUND = re.compile(r"Could not find a registered machine (named|with UUID) '([^']*)'")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)\S*$")
_INFO_LINE = re.compile(r'^(?:"(?P<qkey>[^"]+)"|(?P<key>[^=]+))=(?:"(?P<qval>.*)"|(?P<val>.*))$')

VTX_HINT = ("Enable hardware virtualization (Intel VT-x / AMD-V, often called 'Virtualization Technology' or "
            "'SVM') in the BIOS/UEFI settings. Inside a VM, enable nested virtualization on the outer hypervisor.")
HYPERV_HINT = ("Hyper-V (or WSL2 / Virtual Machine Platform / Memory Integrity) holds the CPU's virtualization. "
               "Use the hyperv driver, or turn Hyper-V off: 'bcdedit /set hypervisorlaunchtype off' and reboot.")


class VBoxNotFound(NotFound):
    """VBoxManage says the VM does not exist."""


def windows_dirs(environ: Mapping[str, str] | None = None, platform: str | None = None) -> list[str]:
    """Where VirtualBox installs VBoxManage.exe on Windows: the installer's environment variables,
    the registry's InstallDir, then the default folder."""
    env = os.environ if environ is None else environ
    if (platform or sys.platform) != "win32":
        return []
    dirs = [env[k] for k in ("VBOX_MSI_INSTALL_PATH", "VBOX_INSTALL_PATH") if env.get(k)]
    reg = _registry_install_dir()
    if reg:
        dirs.append(reg)
    dirs.append(r"C:\Program Files\Oracle\VirtualBox")
    return dirs


def _registry_install_dir() -> str | None:
    if sys.platform != "win32":
        return None
    try:  # pragma: no cover - Windows only
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Oracle\VirtualBox") as key:
            return str(winreg.QueryValueEx(key, "InstallDir")[0])
    except OSError:  # pragma: no cover
        return None


def find(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """The VBoxManage executable: on PATH, else (Windows) the install folders."""
    return process.which("VBoxManage", windows_dirs(environ, platform))


def classify(stderr: str, what: str) -> MachineError:
    """The typed error for VBoxManage's error text."""
    text = stderr.strip()
    short = "\n".join(line for line in text.splitlines() if "Details:" not in line and "Context:" not in line)
    short = short.replace("VBoxManage.exe: error: ", "").replace("VBoxManage: error: ", "").strip() or text
    m = NOT_FOUND.search(text)
    if m:
        return VBoxNotFound(f"VirtualBox has no VM {m.group(2)!r}",
                            "It was removed outside machine; run: machine rm -f NAME")
    if "VERR_NEM_NOT_AVAILABLE" in text or "WHvCapabilityCodeHypervisorPresent" in text or "HVP=0" in text:
        return HostNotUsable(f"VirtualBox cannot use hardware virtualization: {short}", HYPERV_HINT)
    if any(code in text for code in ("VERR_VMX_NO_VMX", "VERR_VMX_MSR_ALL_VMX_DISABLED", "VERR_SVM_DISABLED",
                                     "VERR_SVM_NO_SVM", "VT-x is disabled", "AMD-V is disabled")):
        return HostNotUsable(f"Hardware virtualization is not available: {short}", VTX_HINT)
    if "EnableStaticIPConfig" in text and "E_ACCESSDENIED" in text:
        return DriverError(f"VirtualBox refused the host-only address: {short}",
                           "VirtualBox >= 6.1.28 allows only 192.168.56.0/21 unless /etc/vbox/networks.conf lists "
                           "more (a line like '* 10.0.0.0/8 192.168.0.0/16'); use --virtualbox-hostonly-cidr in it.")
    if "vboxdrv" in text or "kernel driver not installed" in text.lower():
        return HostNotUsable(f"The VirtualBox kernel module is not loaded: {short}",
                             "Run 'sudo /sbin/vboxconfig' (install your kernel's headers first), then retry.")
    return DriverError(f"VBoxManage {what} failed: {short[-800:]}", "Run again with -D to see the VBoxManage commands.")


class VBoxManage:
    """Runs one VBoxManage executable."""

    def __init__(self, path: str, sleep=time.sleep) -> None:
        self.path = path
        self._sleep = sleep

    def run(self, *args: str | os.PathLike[str], timeout: float = 120, retries: int = RETRIES) -> str:
        """Run `VBoxManage args...` and return stdout. `error:` on stderr is a failure even with exit 0
        (VBoxManage sometimes exits 0 after a fatal error); transient lock errors are retried."""
        argv = [self.path, *[str(a) for a in args]]
        what = str(args[0]) if args else ""
        for attempt in range(retries + 1):
            res = process.run(argv, timeout=timeout, env={"LANG": "C", "LC_ALL": "C"}, what=f"VBoxManage {what}")
            failed = not res.ok or "error:" in res.stderr
            if not failed:
                return res.stdout
            if attempt < retries and any(t in res.stderr for t in TRANSIENT):
                self._sleep(RETRY_DELAY * (attempt + 1))
                continue
            raise classify(res.stderr or res.stdout or f"exit {res.returncode}", what)
        raise AssertionError("unreachable")

    def version(self) -> tuple[int, int, int]:
        out = self.run("--version", timeout=30, retries=0)
        return parse_version(out)

    def vminfo(self, vm: str) -> dict[str, str]:
        return parse_machinereadable(self.run("showvminfo", vm, "--machinereadable"))


def parse_version(out: str) -> tuple[int, int, int]:
    """`7.0.14r161095` (possibly after warning lines, e.g. the Linux vboxdrv warning)."""
    for line in reversed(out.strip().splitlines()):
        m = _VERSION.match(line.strip())
        if m:
            return int(m.group(1)), int(m.group(2)), int(m.group(3))
    raise DriverError(f"Cannot read the VirtualBox version from {out.strip()[:200]!r}",
                      "Check that 'VBoxManage --version' works in a terminal.")


def parse_machinereadable(out: str) -> dict[str, str]:
    """`key="value"` / `"key"="value"` / `key=value` lines; other lines (e.g. VirtualBox 7's
    `Encryption:     disabled`, multi-line descriptions) are skipped."""
    info: dict[str, str] = {}
    for line in out.splitlines():
        m = _INFO_LINE.match(line.rstrip("\r"))
        if m:
            key = m.group("qkey") or m.group("key")
            value = m.group("qval") if m.group("qval") is not None else m.group("val")
            info[key] = value
    return info


def parse_blocks(out: str, start: str = "Name") -> list[dict[str, str]]:
    """`Key:   value` records (list hostonlyifs, hostonlynets, dhcpservers). A record begins at its
    `start` key (`Name`, or `NetworkName` for DHCP servers), not at a blank line: some listings have
    blank lines inside a record. Indented lines (nested DHCP options) are skipped."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in out.splitlines():
        if not line.strip() or line[:1].isspace():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == start:
            current = {}
            blocks.append(current)
        if current is not None:
            current.setdefault(key, value.strip())
    return blocks


def forwards(info: Mapping[str, str]) -> dict[str, tuple[str, int, int]]:
    """NAT rules `Forwarding(i)="name,proto,hostip,hostport,guestip,guestport"` -> name: (hostip, hostport,
    guestport)."""
    out: dict[str, tuple[str, int, int]] = {}
    for key, value in info.items():
        if key.startswith("Forwarding("):
            parts = value.split(",")
            if len(parts) == 6 and parts[3].isdigit() and parts[5].isdigit():
                out[parts[0]] = (parts[2] or "127.0.0.1", int(parts[3]), int(parts[5]))
    return out


def version_ok(version: Sequence[int]) -> bool:
    return tuple(version[:2]) >= MIN_VERSION


def install_hint() -> str:
    return ("Install VirtualBox >= 6.1 from https://www.virtualbox.org/wiki/Downloads "
            "(on Windows it is found in VBOX_MSI_INSTALL_PATH or C:\\Program Files\\Oracle\\VirtualBox).")
