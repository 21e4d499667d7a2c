"""Contract harness for the `libvirt` driver.

Default: libvirt's in-process `test:///default` hypervisor (no daemon; real libvirt state machine,
real domain XML parsing). The machine OS image is a fake build directory (the test hypervisor never
reads the kernel), the data disk is made by the real qemu-img. Differences from a real daemon:
  - the test driver has no ACPI shutdown flag: the driver falls back to plain `shutdown()`, which
    the test driver finishes at once (so the ACPI step of the lifecycle is exercised, not faked);
  - it has no real DHCP (it reports made-up leases): network mode is covered by tests/drivers/test_libvirt.py;
  - its state lives as long as a connection is open: the driver caches one connection per URI.

MACHINE_CONTRACT_REAL=libvirt uses qemu:///system with the built machine OS and a real seed
(skips when libvirtd is not reachable or the image is missing). A real guest ignores the ACPI power
button until its init runs, and the lifecycle test presses it right after start: the real harness's
driver waits for the guest's `machine-os: ssh-ready` line before an ACPI stop (what `machine stop`
users get instead is the orchestrator's kill after its timeout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from harness import Harness, context, real_requested
from machine.drivers.libvirt import LibvirtDriver
from machine.drivers.libvirt.connection import import_libvirt

from machine import waiting
from machine.driver import State

REAL = real_requested("libvirt")
TEST_URI = "test:///default"
REAL_URI = "qemu:///system"


def _fake_os(tmp_path: Path) -> Path:
    d = tmp_path / "fake-machine-os"
    d.mkdir(exist_ok=True)
    (d / "vmlinuz").write_bytes(b"not a kernel: the test hypervisor never boots it")
    (d / "initrd.img").write_bytes(b"not an initrd")
    (d / "manifest.json").write_text(json.dumps({"cmdline": "console=ttyS0,115200n8 quiet"}))
    return d


def _real_seed(machine_dir: Path, name: str) -> Path:
    from machine.provision.seediso import build_seed

    return build_seed(machine_dir / "seed.iso", instance_id=f"contract-{name}", hostname=name,
                      authorized_keys=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIContractHarnessOnlyNoLoginKey contract"])


class _BootedBeforeACPI(LibvirtDriver):
    """The real driver; an ACPI stop first waits until the guest has booted (see the docstring)."""

    def stop(self, force: bool = False) -> None:
        if not force and self.status() == State.RUNNING:
            waiting.until(lambda: waiting.serial_has(self.console_log(), "machine-os: ssh-ready"), timeout=240,
                          what="the guest to boot before the ACPI stop")
        super().stop(force)


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LibvirtDriver:
    if REAL:
        ctx = context(tmp_path, options={"uri": REAL_URI, "accel": "tcg", "network": "user", "memory": 768},
                      seed=False)
        ctx.seed_path = _real_seed(ctx.machine_dir, ctx.name)
        return _BootedBeforeACPI(ctx)
    monkeypatch.setenv("MACHINE_OS_DIR", str(_fake_os(tmp_path)))
    return LibvirtDriver(context(tmp_path, options={"uri": TEST_URI, "accel": "tcg", "network": "user",
                                                    "disk_size": 1024}))


def skip_reason() -> str | None:
    try:
        libvirt = import_libvirt()
    except Exception as e:  # noqa: BLE001 - reported as the skip reason
        return f"libvirt-python is not installed: {e}"
    if not REAL:
        return None
    try:
        libvirt.open(REAL_URI).close()
    except libvirt.libvirtError as e:
        return f"libvirtd is not reachable at {REAL_URI}: {e}"
    from machine.images.catalogue import default_image

    try:
        default_image()
    except Exception as e:  # noqa: BLE001
        return f"the machine OS image is not built: {e}"
    return None


def hide_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tool is the libvirt binding: make `import libvirt` fail."""
    monkeypatch.setitem(sys.modules, "libvirt", None)


HARNESSES = [
    Harness(id="libvirt-real" if REAL else "libvirt", driver_cls=LibvirtDriver, make=make, skip_reason=skip_reason,
            created_state="stopped", state_timeout=180.0 if REAL else 10.0, hide_tool=hide_tool),
]
