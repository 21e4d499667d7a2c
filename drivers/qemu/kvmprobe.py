"""Is KVM usable on this host? A probe boot answers, because /dev/kvm existing is not enough.

Nested or paravirtualised KVM (e.g. the `kvm_pvm` module) can offer /dev/kvm and still fail to
run a guest: `-cpu host` aborts with `failed to set MSR 0x10a`, other CPU models hang in the
BIOS. So `kvm_verdict` boots a tiny payload with `-accel kvm -cpu host` and waits a few seconds
for it to print a marker on the serial port; when the locally built machine OS kernel is there,
it then boots that kernel to init as well. The verdict is cached per host in the store's cache
dir, keyed by kernel release, qemu version and /dev/kvm presence; `machine doctor --recheck`
probes again. Shared by the qemu and libvirt drivers (both run qemu under KVM).
"""

from __future__ import annotations

import json
import os
import platform
import re
import struct
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from machine import process
from machine.atomicfile import write_atomic
from machine.errors import MachineError
from machine.filelock import FileLock
from machine.process import kill_pid, pid_alive  # moved to machine.process; still importable from here

# TCG translation cache for every driver: qemu's default (1 GiB) doubles its RSS; 128 MiB kept boot time
# unchanged in A/B runs and brought an idle 1 GiB guest from ~850 to ~660 MiB RSS.
TCG_TB_CACHE_MIB = 128
CACHE_FILE = "kvm-verdict.json"
PAYLOAD_MARKER = "MACHINE-KVM-PROBE-OK"
KERNEL_MARKERS = ("Run /init as init process", "Freeing unused kernel", "machine-os: ")
PAYLOAD_TIMEOUT = 6.0
KERNEL_TIMEOUT = 20.0
KVM_DEVICE = Path("/dev/kvm")


@dataclass(frozen=True)
class Verdict:
    usable: bool
    reason: str
    checked_at: str = ""
    cached: bool = False


INSTALL_HINT = {
    "linux": "Install QEMU: apt install qemu-system-x86 qemu-utils (dnf install qemu-kvm qemu-img on Fedora).",
    "darwin": "Install QEMU: brew install qemu.",
    "win32": "Install QEMU for Windows (https://qemu.weilnetz.de/w64/) and add C:\\Program Files\\qemu to PATH.",
}


def install_hint(platform: str | None = None) -> str:
    p = platform or sys.platform
    return INSTALL_HINT["linux" if p.startswith("linux") else p] if (p.startswith("linux") or p in INSTALL_HINT) \
        else "Install QEMU (qemu-system and qemu-img) from https://www.qemu.org/download/."


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- qemu binaries ----------------------------------------------------------------------------


def host_arch() -> str:
    """qemu's name for this host's CPU architecture: x86_64 or aarch64."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


WINDOWS_QEMU_DIRS = (r"C:\Program Files\qemu",)
MAC_QEMU_DIRS = ("/opt/homebrew/bin", "/usr/local/bin")


def find_qemu(program: str | None = None) -> str | None:
    """Path of qemu-system-<host arch> (or `program`), looking in the usual install folders too."""
    name = program or f"qemu-system-{host_arch()}"
    extra = WINDOWS_QEMU_DIRS if sys.platform == "win32" else MAC_QEMU_DIRS if sys.platform == "darwin" else ()
    return process.which(name, extra)


def qemu_version(binary: str) -> str:
    """'7.2.22' from `qemu-system-x86_64 --version`; '' when it cannot be run."""
    try:
        result = process.run([binary, "--version"], timeout=15)
    except MachineError:
        return ""
    m = re.search(r"version\s+(\d+\.\d+(?:\.\d+)?)", result.stdout)
    return m.group(1) if m else ""


# -- the probe payload ------------------------------------------------------------------------


def multiboot_payload(message: str = PAYLOAD_MARKER) -> bytes:
    """A tiny x86 multiboot (v1, a.out kludge) kernel that writes `message` to COM1 and halts.
    qemu's `-kernel` loads it at 1 MiB and jumps to it in 32-bit protected mode."""
    base, header_size = 0x100000, 32
    magic, flags = 0x1BADB002, 0x00010000  # bit 16: the address fields below are valid
    checksum = (-(magic + flags)) & 0xFFFFFFFF
    code_size = 21
    msg_addr = base + header_size + code_size
    code = (
        b"\xbe" + struct.pack("<I", msg_addr)  # mov esi, msg
        + b"\x66\xba\xf8\x03"  # mov dx, 0x3f8
        + b"\xac"  # 1: lodsb
        + b"\x84\xc0"  # test al, al
        + b"\x74\x03"  # jz 2f
        + b"\xee"  # out dx, al
        + b"\xeb\xf8"  # jmp 1b
        + b"\xfa\xf4"  # 2: cli; hlt
        + b"\xeb\xfc"  # jmp 2b
    )
    assert len(code) == code_size
    header = struct.pack("<8I", magic, flags, checksum, base, base, 0, 0, base + header_size)
    body = header + code + message.encode() + b"\r\n\x00"
    return body.ljust(512, b"\x00")


# -- probing ----------------------------------------------------------------------------------


def _probe_boot(qemu: str, workdir: Path, boot_args: list[str], markers: tuple[str, ...], timeout: float,
                what: str, accel_args: list[str] | None = None) -> tuple[bool, str]:
    """Boot qemu under KVM (`accel_args` for tests) with `boot_args`; (True, '') once a marker shows
    on the serial port."""
    serial = workdir / f"{what}-serial.log"
    qlog = workdir / f"{what}-qemu.log"
    args = [qemu, *(accel_args or ["-accel", "kvm", "-cpu", "host"]), "-m", "256", "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-no-reboot", "-serial", f"file:{serial}", *boot_args]
    if host_arch() == "aarch64":
        args[1:1] = ["-machine", "virt"]
    try:
        pid = process.spawn(args, log_file=qlog)
    except MachineError as e:
        return False, f"could not start qemu: {e}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if any(m in text for m in markers):
                return True, ""
            if not pid_alive(pid):
                err = qlog.read_text(errors="replace").strip() if qlog.exists() else ""
                return False, f"qemu exited during the {what} probe: {_error_line(err) or 'no output'}"
            if time.monotonic() >= deadline:
                where = _last_line(text) or "no serial output"
                return False, f"the {what} probe under KVM did not boot within {timeout:g} s (last output: {where})"
            time.sleep(0.05)
    finally:
        kill_pid(pid)


def _error_line(text: str) -> str:
    """qemu's first `error:` line (e.g. failed to set MSR 0x10a), else its last line."""
    for line in text.splitlines():
        if "error:" in line:
            return line.strip()[:200]
    return _last_line(text)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def probe_kvm(qemu: str, kernel: Path | None = None, initrd: Path | None = None) -> tuple[bool, str]:
    """Boot the tiny payload (x86) and, when given, a real kernel+initrd, under KVM."""
    with tempfile.TemporaryDirectory(prefix="machine-kvm-probe-") as tmp:
        workdir = Path(tmp)
        ran = []
        if host_arch() == "x86_64":
            payload = workdir / "probe.bin"
            payload.write_bytes(multiboot_payload())
            ok, why = _probe_boot(qemu, workdir, ["-kernel", str(payload)], (PAYLOAD_MARKER,), PAYLOAD_TIMEOUT,
                                  "payload")
            if not ok:
                return False, why
            ran.append("a probe payload")
        if kernel and initrd and kernel.is_file() and initrd.is_file():
            console = "ttyAMA0" if host_arch() == "aarch64" else "ttyS0"
            ok, why = _probe_boot(qemu, workdir, ["-kernel", str(kernel), "-initrd", str(initrd), "-append",
                                                  f"console={console} panic=-1 loglevel=7"],
                                  KERNEL_MARKERS, KERNEL_TIMEOUT, "kernel")
            if not ok:
                return False, why
            ran.append("the machine OS kernel")
        if not ran:
            return False, "nothing to probe KVM with on this architecture (build the machine OS image)"
        return True, f"a probe boot of {' and '.join(ran)} under KVM (-cpu host) worked"


def _cache_key(qemu: str | None, with_kernel: bool) -> str:
    version = qemu_version(qemu) if qemu else ""
    key = f"{platform.system()} {platform.release()} | qemu {version or '?'} | /dev/kvm={KVM_DEVICE.exists()}"
    return key + (" | kernel probe" if with_kernel else "")


def _probe_kernel() -> tuple[Path | None, Path | None]:
    try:
        from machine.images.catalogue import machine_os_dir

        d = machine_os_dir()
    except Exception:  # the image module is optional for the probe
        return None, None
    return d / "vmlinuz", d / "initrd.img"


def kvm_verdict(cache_dir: Path | None, recheck: bool = False) -> Verdict:
    """Can qemu use KVM here? Cheap checks first (Linux, /dev/kvm, permissions, qemu); then a
    cached probe boot. `recheck` ignores the cache."""
    if not sys.platform.startswith("linux"):
        return Verdict(False, "KVM exists only on Linux", _now())
    if not KVM_DEVICE.exists():
        return Verdict(False, "/dev/kvm does not exist (no KVM module loaded, or no nested virtualisation)", _now())
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return Verdict(False, "no read/write access to /dev/kvm (add your user to the 'kvm' group)", _now())
    qemu = find_qemu()
    if not qemu:
        return Verdict(False, f"qemu-system-{host_arch()} is not installed, so KVM cannot be probed", _now())
    kernel, initrd = _probe_kernel()
    key = _cache_key(qemu, bool(kernel and initrd and kernel.is_file() and initrd.is_file()))
    cache = Path(cache_dir) / CACHE_FILE if cache_dir else None
    if cache is None:
        ok, reason = probe_kvm(qemu, kernel, initrd)
        return Verdict(ok, reason, _now())
    cache.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(cache.with_name(f".{CACHE_FILE}.lock"), timeout=120.0, what="the KVM probe"):
        saved = _read_cache(cache)
        if not recheck and key in saved:
            entry = saved[key]
            return Verdict(bool(entry.get("usable")), str(entry.get("reason", "")), str(entry.get("checked_at", "")),
                           cached=True)
        ok, reason = probe_kvm(qemu, kernel, initrd)
        verdict = Verdict(ok, reason, _now())
        entry = asdict(verdict)
        entry.pop("cached")
        saved[key] = entry
        write_atomic(cache, json.dumps(saved, indent=2, sort_keys=True) + "\n", mode=0o644)
        return verdict


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
