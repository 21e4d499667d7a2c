"""Setting up the faithful fakes for a test: the fake tool first on PATH, a placeholder machine OS build, and
each fake's own state (VirtualBox's VBOX_USER_HOME, HyperKit's leases file and the Intel-Mac host it needs).
Shared by the driver tests (tests/drivers/) and the contract harnesses (tests/contract/)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parent
VBOXMANAGE = FAKES / "vboxmanage" / "VBoxManage"
HYPERKIT = FAKES / "hyperkit" / "hyperkit"


def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str, fake: Path, folder: str = "fake-bin") -> Path:
    """Link `fake` as `tool` in tmp_path/folder and put that folder first on PATH; returns the folder."""
    bindir = tmp_path / folder
    bindir.mkdir(exist_ok=True)
    if not (bindir / tool).exists():
        (bindir / tool).symlink_to(fake)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bindir


def machine_os_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str = "machine-os",
                     cmdline: str | None = None) -> Path:
    """Placeholder files of a machine OS build (nothing boots from them) as MACHINE_OS_DIR; with `cmdline`, a
    manifest giving the kernel command line."""
    os_dir = tmp_path / folder
    os_dir.mkdir(exist_ok=True)
    for name in ("vmlinuz", "initrd.img", "machine-os.iso"):
        (os_dir / name).write_bytes(b"placeholder " + name.encode())
    if cmdline is not None:
        (os_dir / "manifest.json").write_text(json.dumps({"cmdline": cmdline}))
    monkeypatch.setenv("MACHINE_OS_DIR", str(os_dir))
    return os_dir


def vboxmanage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, networks_conf: Path, folder: str = "fake-bin",
               os_folder: str = "machine-os") -> Path:
    """The fake VBoxManage with its own VBOX_USER_HOME (returned: its state and DHCP leases) and a
    machine OS build; `networks_conf` stands in for /etc/vbox/networks.conf."""
    on_path(tmp_path, monkeypatch, "VBoxManage", VBOXMANAGE, folder)
    home = tmp_path / "vbox-home"
    monkeypatch.setenv("VBOX_USER_HOME", str(home))
    monkeypatch.setenv("FAKE_VBOX_NETWORKS_CONF", str(networks_conf))
    monkeypatch.setenv("FAKE_VBOX_REQUIRE_C_LOCALE", "1")
    monkeypatch.delenv("FAKE_VBOX_FAIL", raising=False)
    machine_os_build(tmp_path, monkeypatch, os_folder)
    return home


def intel_mac(monkeypatch: pytest.MonkeyPatch, root: bool = True, machine: str | None = "x86_64") -> None:
    """What the HyperKit driver asks of its host: macOS on Intel, run as root (or not)."""
    from machine.drivers.hyperkit import HyperKitDriver

    monkeypatch.setattr(HyperKitDriver, "host_platform", "darwin")
    monkeypatch.setattr(HyperKitDriver, "host_machine", machine)
    monkeypatch.setattr(HyperKitDriver, "_is_root", staticmethod(lambda: root))


def hyperkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str = "fake-bin", os_folder: str = "machine-os",
             cmdline: str | None = None) -> Path:
    """The fake hyperkit (found on PATH only), a machine OS build, an Intel Mac, and the leases file the fake
    writes its DHCP lease to (returned)."""
    import machine.drivers.hyperkit as hk
    from machine.drivers.hyperkit import HyperKitDriver

    on_path(tmp_path, monkeypatch, "hyperkit", HYPERKIT, folder)
    monkeypatch.setattr(hk, "HYPERKIT_DIRS", ())
    machine_os_build(tmp_path, monkeypatch, os_folder, cmdline)
    lease_file = tmp_path / "dhcpd_leases"
    monkeypatch.setenv("FAKE_HYPERKIT_LEASES", str(lease_file))
    monkeypatch.delenv("FAKE_HYPERKIT_FAIL", raising=False)
    monkeypatch.setattr(HyperKitDriver, "leases_path", lease_file)
    intel_mac(monkeypatch)
    return lease_file
