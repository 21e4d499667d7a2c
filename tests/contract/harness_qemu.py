"""Contract harness for the `qemu` driver: the real qemu-system with the built machine OS (TCG here).

qemu itself is the tool, so there is no fake: the harness skips when qemu or the machine OS build is
missing. A guest ignores the ACPI power button until its init runs and the lifecycle test presses it
right after start, so the harness's driver waits for the guest's `machine-os: ssh-ready` line before
an ACPI stop (users of `machine stop` get the orchestrator's kill after its timeout instead).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from harness import Harness, context
from machine.drivers.qemu import QemuDriver

from machine import waiting
from machine.driver import State, option_values


class _BootedBeforeACPI(QemuDriver):
    def stop(self, force: bool = False) -> None:
        if not force and self.status() == State.RUNNING:
            waiting.until(lambda: waiting.serial_has(self.console_log(), "machine-os: ssh-ready"), timeout=240,
                          what="the guest to boot before the ACPI stop")
        super().stop(force)


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> QemuDriver:
    from machine.provision.seediso import build_seed

    options = option_values(QemuDriver, {"cpus": 1, "memory": 512, "disk_size": 1024, "accel": "tcg"}, environ={})
    ctx = context(tmp_path, options=options, seed=False)
    ctx.seed_path = build_seed(ctx.machine_dir / "seed.iso", instance_id="contract-qemu", hostname=ctx.name,
                               authorized_keys=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIContractHarnessOnlyNoLoginKey c"])
    return _BootedBeforeACPI(ctx)


def skip_reason() -> str | None:
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed (apt install qemu-system-x86 qemu-utils)"
    from machine.images.catalogue import default_image

    try:
        default_image()
    except Exception as e:  # noqa: BLE001 - reported as the skip reason
        return f"the machine OS image is not built (python3 isos/build.py): {e}"
    return None


HARNESSES = [
    Harness(id="qemu", driver_cls=QemuDriver, make=make, skip_reason=skip_reason, created_state="stopped",
            state_timeout=180.0),
]
