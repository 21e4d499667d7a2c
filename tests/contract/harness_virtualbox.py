"""Contract harness for the `virtualbox` driver: the recorded-output VBoxManage fake
(tests/fakes/vboxmanage), or with MACHINE_CONTRACT_REAL=virtualbox the real VirtualBox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import Harness, context, real_requested
from machine.drivers.virtualbox import VirtualBoxDriver, vbm

from tests.fakes import install

CONTRACT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNvbnRyYWN0LXN1aXRlLW9ubHktbm90LWEtcmVhbC1rZXk contract"


def install_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake VBoxManage first on PATH with its own VBOX_USER_HOME and a placeholder machine OS
    build. Returns the VBOX_USER_HOME folder (the fake's state and DHCP leases)."""
    return install.vboxmanage(tmp_path, monkeypatch, networks_conf=tmp_path / "no-networks.conf")


def seed(path: Path, name: str) -> None:
    from machine.provision.seediso import build_seed

    build_seed(path, instance_id=f"contract-{name}", hostname=name, authorized_keys=[CONTRACT_KEY])


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VirtualBoxDriver:
    if not real_requested("virtualbox"):
        install_fake(tmp_path, monkeypatch)
    name = f"contract-{os.getpid()}-{tmp_path.name[-12:]}".replace("_", "-")
    ctx = context(tmp_path, name=name, seed=False)
    ctx.seed_path = ctx.machine_dir / "seed.iso"
    seed(ctx.seed_path, name)
    ctx.options = {"memory": 1024, "cpus": 1, "disk_size": 4096}
    return VirtualBoxDriver(ctx)


def skip_reason() -> str | None:
    if not real_requested("virtualbox"):
        return None
    if not vbm.find():
        return "MACHINE_CONTRACT_REAL=virtualbox but VBoxManage is not installed"
    try:
        from machine.images.catalogue import default_image

        default_image()
    except Exception as e:  # the real VM needs the built machine OS
        return f"MACHINE_CONTRACT_REAL=virtualbox but the machine OS is missing: {e}"
    return None


def hide_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    for var in ("VBOX_MSI_INSTALL_PATH", "VBOX_INSTALL_PATH"):
        monkeypatch.delenv(var, raising=False)


HARNESSES = [
    Harness(id="virtualbox-real" if real_requested("virtualbox") else "virtualbox", driver_cls=VirtualBoxDriver,
            make=make, skip_reason=skip_reason, created_state="stopped",
            state_timeout=120.0 if real_requested("virtualbox") else 10.0, hide_tool=hide_tool,
            available_with_fake=True),
]
