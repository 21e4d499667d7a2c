"""Which accelerator qemu gets: KVM on Linux only where a probe boot shows it really works, HVF on
macOS, WHPX on Windows, else TCG (software emulation) with a note the user sees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from machine.drivers.qemu.kvmprobe import Verdict

ACCELS = ("auto", "kvm", "tcg", "hvf", "whpx")
TCG_NOTE = "TCG software emulation: the machine runs several times slower than with a hypervisor"


def choose(requested: str, platform: str, cache_dir: Path | None,
           verdict: Callable[[Path | None], Verdict] | None = None) -> tuple[str, str]:
    """(accelerator, note). `verdict` answers whether KVM works (machine.drivers.qemu.kvmprobe.kvm_verdict)."""
    requested = (requested or "auto").lower()
    if requested not in ACCELS:
        raise ValueError(f"unknown accelerator {requested!r}")
    if verdict is None:
        from machine.drivers.qemu.kvmprobe import kvm_verdict as verdict
    if requested == "tcg":
        return "tcg", f"{TCG_NOTE} (chosen with --qemu-accel tcg)."
    if requested == "kvm":
        v = verdict(cache_dir) if platform.startswith("linux") else None
        if v is not None and not v.usable:
            return "kvm", f"KVM was requested although the KVM probe says it is unusable: {v.reason}."
        return "kvm", "KVM (requested)."
    if requested in ("hvf", "whpx"):
        return requested, f"{requested.upper()} (requested)."
    if platform.startswith("linux"):
        v = verdict(cache_dir)
        if v.usable:
            return "kvm", "KVM hardware acceleration."
        return "tcg", (f"KVM is not usable on this host ({v.reason}); using {TCG_NOTE}. "
                       "Run 'machine doctor' for details.")
    if platform == "darwin":
        return "hvf", "HVF (Hypervisor.framework) hardware acceleration."
    if platform == "win32":
        return "whpx", "WHPX (Windows Hypervisor Platform) hardware acceleration."
    return "tcg", f"No hardware accelerator is known for {platform}; using {TCG_NOTE}."
