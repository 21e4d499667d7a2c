"""Contract harness for the `virtualbox` driver: the recorded-output VBoxManage fake
(tests/fakes/vboxmanage), or with MACHINE_CONTRACT_REAL=virtualbox the real VirtualBox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import Harness, context, real_requested
from machine.drivers.virtualbox import VirtualBoxDriver, vbm

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "vboxmanage" / "VBoxManage"
CONTRACT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNvbnRyYWN0LXN1aXRlLW9ubHktbm90LWEtcmVhbC1rZXk contract"


def install_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake VBoxManage first on PATH with its own VBOX_USER_HOME and a placeholder machine OS
    build. Returns the VBOX_USER_HOME folder (the fake's state and DHCP leases)."""
    bindir = tmp_path / "fake-bin"
    bindir.mkdir(exist_ok=True)
    link = bindir / "VBoxManage"
    if not link.exists():
        link.symlink_to(FAKE)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    home = tmp_path / "vbox-home"
    monkeypatch.setenv("VBOX_USER_HOME", str(home))
    monkeypatch.setenv("FAKE_VBOX_NETWORKS_CONF", str(tmp_path / "no-networks.conf"))
    monkeypatch.setenv("FAKE_VBOX_REQUIRE_C_LOCALE", "1")
    monkeypatch.delenv("FAKE_VBOX_FAIL", raising=False)
    os_dir = tmp_path / "machine-os"
    os_dir.mkdir(exist_ok=True)
    for name in ("vmlinuz", "initrd.img", "machine-os.iso"):
        (os_dir / name).write_bytes(b"placeholder " + name.encode())
    monkeypatch.setenv("MACHINE_OS_DIR", str(os_dir))
    return home


def seed(path: Path, name: str) -> None:
    from machine.provision.seed import build_seed

    build_seed(path, instance_id=f"contract-{name}", hostname=name, authorized_keys=[CONTRACT_KEY])


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VirtualBoxDriver:
    if not real_requested("virtualbox"):
        install_fake(tmp_path, monkeypatch)
    name = f"contract-{os.getpid()}-{tmp_path.name[-12:]}".replace("_", "-")
    ctx = context(tmp_path, name=name, seed=False)
    ctx.seed_path = ctx.machine_dir / "seed.iso"
    seed(ctx.seed_path, name)
    ctx.options = {"memory": 1024, "cpu_count": 1, "disk_size": 4096}
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
