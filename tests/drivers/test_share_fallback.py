"""VirtualBox and HyperKit fall back to reverse-sftp (the agent mounts the shares over SSH) when the machine OS
image cannot mount their own mechanism (Debian 12's cloud kernel has neither vboxsf nor 9p), checked against the
faithful fakes: the recorded-output VBoxManage (its shared-folder state) and the fake hyperkit (its argv)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from machine.drivers.hyperkit import HyperKitDriver
from machine.drivers.virtualbox import VirtualBoxDriver

from machine.driver import DriverContext
from machine.errors import DriverError
from tests.fakes import install

DEBIAN12_CLOUD = ["cifs", "fuse", "virtiofs"]  # the machine OS manifest's share_filesystems today (no vboxsf/9p)


def image_mounts(filesystems: list[str] | None) -> None:
    """The fake machine OS build's manifest declares these share file systems (None: an older build, no field)."""
    manifest = Path(os.environ["MACHINE_OS_DIR"]) / "manifest.json"
    data = json.loads(manifest.read_text()) if manifest.exists() else {}
    data.pop("share_filesystems", None)
    if filesystems is not None:
        data["share_filesystems"] = filesystems
    manifest.write_text(json.dumps(data))


def shares(tmp_path: Path) -> list[dict]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    return [{"tag": "msh0", "host": str(src), "guest": "/src", "ro": False}]


# -- VirtualBox -------------------------------------------------------------------------------------------------


@pytest.fixture
def vbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return install.vboxmanage(tmp_path, monkeypatch, networks_conf=tmp_path / "networks.conf", folder="bin",
                              os_folder="os")


def vbox_driver(tmp_path: Path, name: str = "vb", choice: str = "auto") -> VirtualBoxDriver:
    mdir = tmp_path / "machines" / name
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / "seed.iso").write_bytes(b"seed")
    return VirtualBoxDriver(DriverContext(name=name, machine_dir=mdir, options={}, seed_path=mdir / "seed.iso",
                                          shares=shares(tmp_path), share_mechanism=choice))


def folders(home: Path, uuid: str) -> dict:
    """The VM's permanent shared folders as the fake VBoxManage keeps them."""
    return json.loads((home / "fake-vbox-state.json").read_text())["vms"][uuid].get("sharedfolders", {})


def test_virtualbox_shares_over_reverse_sftp_when_the_image_has_no_vboxsf(vbox: Path, tmp_path: Path) -> None:
    image_mounts(DEBIAN12_CLOUD)
    d = vbox_driver(tmp_path)
    d.create()
    try:
        assert d.data["guest_share_fs"] == DEBIAN12_CLOUD
        assert d.data["share_mechanism"] == "reverse-sftp"  # what the agent reads to mount them over SSH
        assert folders(vbox, d.data["uuid"]) == {}  # no shared folder for a guest that cannot mount vboxsf
        assert not any(k.startswith("SharedFolderName") for k in d._info())
        d.start()
        assert folders(vbox, d.data["uuid"]) == {} and d.data["share_mechanism"] == "reverse-sftp"
        d.stop(force=True)
        d.ctx.share_mechanism = "vboxsf"  # pinned to what the image cannot mount: the start says why
        with pytest.raises(DriverError, match="not vboxsf: the machine's image cannot mount vboxsf") as err:
            d.start()
        assert "--share-mechanism auto" in err.value.hint
    finally:
        d.remove()


def test_virtualbox_keeps_vboxsf_where_the_image_mounts_it_and_follows_a_pin(vbox: Path, tmp_path: Path) -> None:
    image_mounts(["9p", "fuse", "vboxsf", "virtiofs"])  # Debian 13's generic kernel
    d = vbox_driver(tmp_path)
    d.create()
    try:
        assert d.data["share_mechanism"] == "vboxsf"
        assert folders(vbox, d.data["uuid"])["msh0"]["path"] == str(tmp_path / "src")
        d.ctx.share_mechanism = "reverse-sftp"  # machine set --share-mechanism reverse-sftp: the folder goes
        d.start()
        assert folders(vbox, d.data["uuid"]) == {} and d.data["share_mechanism"] == "reverse-sftp"
        d.stop(force=True)
    finally:
        d.remove()
    image_mounts(None)  # an older build that does not say: vboxsf, as before
    d = vbox_driver(tmp_path, "vb2")
    d.create()
    try:
        assert d.data["guest_share_fs"] is None and d.data["share_mechanism"] == "vboxsf"
        assert list(folders(vbox, d.data["uuid"])) == ["msh0"]
    finally:
        d.remove()


# -- HyperKit ----------------------------------------------------------------------------------------------------


@pytest.fixture
def hyperkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return install.hyperkit(tmp_path, monkeypatch, folder="bin", os_folder="os", cmdline="console=ttyS0 quiet")


def hyperkit_driver(tmp_path: Path) -> HyperKitDriver:
    mdir = tmp_path / "m" / "hk"
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / "seed.iso").write_bytes(b"seed")
    return HyperKitDriver(DriverContext(name="hk", machine_dir=mdir, seed_path=mdir / "seed.iso",
                                        options={"memory": 768, "cpus": 1, "disk_size": 3000},
                                        shares=shares(tmp_path)))


@pytest.mark.parametrize(("filesystems", "want"), [
    (DEBIAN12_CLOUD, "reverse-sftp"), (["9p", "fuse", "virtiofs"], "9p"), (None, "9p"),
])
def test_hyperkit_adds_9p_devices_only_when_the_image_mounts_9p(hyperkit: Path, tmp_path: Path,
                                                                filesystems: list[str] | None, want: str) -> None:
    image_mounts(filesystems)
    d = hyperkit_driver(tmp_path)
    d.create()
    try:
        argv = d.command("hyperkit", d.data["uuid"])
        ninep = [a for a in argv if "virtio-9p" in a]
        assert ninep == ([f"5:0,virtio-9p,path={tmp_path / 'src'},tag=msh0"] if want == "9p" else [])
        assert d.data["share_mechanism"] == want and d.data["guest_share_fs"] == filesystems
    finally:
        d.remove()
