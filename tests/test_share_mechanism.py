"""--share-mechanism and the image's share file systems, without a VM: which mechanism `auto` picks when the
machine OS manifest says what its kernel mounts (and when it does not say: as before), the machine's own choice
before MACHINE_SHARE_MECHANISM, bad choices refused at create and set naming the choices, inspect showing it,
and the qemu/libvirt drivers recording the image's file systems and honouring them at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.cli import run

from machine.errors import UsageError
from machine.shares import mechanisms

QEMU = ("virtiofs", "9p", "reverse-sftp")
DEBIAN12_CLOUD = ["cifs", "fuse", "virtiofs"]  # no 9p in Debian 12's cloud kernel (shared notes: vm-host.md)


@pytest.fixture
def no_virtiofsd(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host where virtiofs cannot serve (no virtiofsd; the same as a non-root user with one)."""
    monkeypatch.setattr(mechanisms, "find_virtiofsd", lambda: None)
    monkeypatch.delenv(mechanisms.OVERRIDE_ENV, raising=False)


def test_auto_skips_what_the_image_cannot_mount(no_virtiofsd: None) -> None:
    assert mechanisms.choose(QEMU, "linux", guest_fs=DEBIAN12_CLOUD).mechanism == "reverse-sftp"
    line = mechanisms.explain(QEMU, "linux", guest_fs=DEBIAN12_CLOUD)
    assert line.startswith("reverse-sftp: ") and "not virtiofs: virtiofsd not found" in line
    assert "not 9p: the machine's image cannot mount 9p (its kernel has cifs, fuse, virtiofs)" in line
    assert mechanisms.choose(QEMU, "linux", guest_fs=["9p", "fuse", "virtiofs"]).mechanism == "9p"
    # an image that does not say (older builds, cloud images): every mechanism is tried, as before
    assert mechanisms.choose(QEMU, "linux", guest_fs=None).mechanism == "9p"
    assert mechanisms.choose(QEMU, "linux", guest_fs=[]) is None


def test_image_filesystems_from_the_manifest() -> None:
    assert mechanisms.image_filesystems({"share_filesystems": ["virtiofs", "fuse"]}) == ["virtiofs", "fuse"]
    assert mechanisms.image_filesystems({}) is None
    assert mechanisms.image_filesystems({"share_filesystems": "9p"}) is None  # damaged: not trusted


def test_the_machine_choice_pins_before_the_environment(no_virtiofsd: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mechanisms.OVERRIDE_ENV, "9p")
    assert mechanisms.choose(QEMU, "linux").mechanism == "9p"
    assert mechanisms.choose(QEMU, "linux", machine_choice="reverse-sftp").mechanism == "reverse-sftp"
    assert mechanisms.choose(QEMU, "linux", machine_choice="auto").mechanism == "9p"
    # pinned to one the image lacks: nothing, and the reason
    assert mechanisms.choose(QEMU, "linux", machine_choice="9p", guest_fs=DEBIAN12_CLOUD) is None
    assert "not 9p: the machine's image cannot mount 9p" in mechanisms.explain(
        QEMU, "linux", machine_choice="9p", guest_fs=DEBIAN12_CLOUD)
    assert mechanisms.explain(("vboxsf",), "linux", machine_choice="9p") == \
        "none: --share-mechanism=9p is not one of vboxsf"


def test_validate_choice_names_the_choices(no_virtiofsd: None) -> None:
    assert mechanisms.validate_choice("Reverse-SFTP", QEMU, "qemu") == "reverse-sftp"
    assert mechanisms.validate_choice("", QEMU, "qemu") == "auto"
    with pytest.raises(UsageError, match="'nfs' is not one of driver qemu's: auto, virtiofs, 9p, reverse-sftp"):
        mechanisms.validate_choice("nfs", QEMU, "qemu")
    with pytest.raises(UsageError, match="virtiofs: this host cannot serve it: virtiofsd not found"):
        mechanisms.validate_choice("virtiofs", QEMU, "qemu", "linux")


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_create_refuses_a_bad_mechanism_and_makes_nothing(store_root: Path) -> None:
    res = run("create", "-d", "qemu", "--share-mechanism", "nfs", "m1")
    assert res.code == 2 and "--share-mechanism 'nfs' is not one of driver qemu's: auto, virtiofs, 9p, " \
                               "reverse-sftp" in res.err, res
    res = run("create", "-d", "virtualbox", "--share-mechanism", "9p", "m1")
    assert res.code == 2 and "not one of driver virtualbox's: auto, vboxsf" in res.err, res
    res = run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "--share-mechanism", "9p", "m1")
    assert res.code == 2 and "Driver 'none' cannot share folders" in res.err, res
    assert not (store_root / "machines" / "m1").exists()


def test_set_changes_the_mechanism_of_a_stopped_machine_and_inspect_shows_it(store_root: Path) -> None:
    from test_set import qemu_machine

    store = qemu_machine(store_root)
    view = json.loads(run("inspect", "dev").out)
    assert view["ShareMechanism"] == {"Chosen": "auto", "InUse": ""}
    res = run("set", "dev", "--share-mechanism", "reverse-sftp")
    assert res.code == 0 and "share mechanism: auto -> reverse-sftp" in res.out, res
    assert store.load("dev").share_mechanism == "reverse-sftp"
    assert json.loads(run("inspect", "dev").out)["ShareMechanism"]["Chosen"] == "reverse-sftp"
    res = run("set", "dev", "--share-mechanism", "reverse-sftp")
    assert res.code == 0 and "Nothing changed" in res.out, res
    res = run("set", "dev", "--share-mechanism", "smb")
    assert res.code == 2 and "not one of driver qemu's" in res.err, res
    assert store.load("dev").share_mechanism == "reverse-sftp"
    # a config without the field (made before it existed) reads as auto
    path = store.config_path("dev")
    data = json.loads(path.read_text())
    del data["share_mechanism"]
    path.write_text(json.dumps(data))
    assert store.load("dev").share_mechanism == "auto"


# -- the drivers -------------------------------------------------------------------------------------------------


def _machine_os(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest: dict) -> Path:
    d = tmp_path / "machine-os"
    d.mkdir()
    for name in ("vmlinuz", "initrd.img", "machine-os.iso"):
        (d / name).write_bytes(b"x")
    (d / "manifest.json").write_text(json.dumps({"cmdline": "console=ttyS0 quiet", **manifest}))
    monkeypatch.setenv("MACHINE_OS_DIR", str(d))
    return d


@pytest.mark.parametrize(("manifest", "choice", "want"), [
    ({"share_filesystems": DEBIAN12_CLOUD}, "auto", "reverse-sftp"),  # the image has no 9p: not chosen
    ({"share_filesystems": ["9p", "fuse"]}, "auto", "9p"),
    ({}, "auto", "9p"),  # an older build without the field: as before
    ({"share_filesystems": DEBIAN12_CLOUD}, "reverse-sftp", "reverse-sftp"),
])
def test_qemu_records_the_image_filesystems_and_picks_by_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              no_virtiofsd: None, manifest: dict, choice: str,
                                                              want: str) -> None:
    from machine.drivers.qemu import QemuDriver, sharing

    from machine.driver import DriverContext

    _machine_os(tmp_path, monkeypatch, manifest)
    mdir = tmp_path / "machines" / "dev"
    mdir.mkdir(parents=True)
    (tmp_path / "cache").mkdir()
    share = tmp_path / "share"
    share.mkdir()
    ctx = DriverContext(name="dev", machine_dir=mdir, cache_dir=tmp_path / "cache", share_mechanism=choice,
                        options={"cpus": 1, "memory": 512, "disk_size": 64, "image": "machine-os", "accel": "tcg"},
                        shares=[{"tag": "msh0", "host": str(share), "guest": "/s", "ro": False}])
    d = QemuDriver(ctx)
    d.create()
    assert d.data["guest_share_fs"] == manifest.get("share_filesystems")
    assert sharing.spec_fields(d) == ({"ninep": (("msh0", str(share), False),)} if want == "9p" else {})
    assert d.data["share_mechanism"] == want
    d.remove()


def test_qemu_start_names_why_a_pinned_mechanism_cannot_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              no_virtiofsd: None) -> None:
    from machine.drivers.qemu import QemuDriver, sharing

    from machine.driver import DriverContext
    from machine.errors import DriverError

    mdir = tmp_path / "m"
    mdir.mkdir()
    d = QemuDriver(DriverContext(name="dev", machine_dir=mdir, options={}, share_mechanism="9p",
                                 data={"guest_share_fs": DEBIAN12_CLOUD},
                                 shares=[{"tag": "msh0", "host": str(tmp_path), "guest": "/s", "ro": False}]))
    with pytest.raises(DriverError, match="not 9p: the machine's image cannot mount 9p") as err:
        sharing.mechanism(d)
    assert "--share-mechanism auto" in err.value.hint


def test_libvirt_boot_plan_carries_the_image_filesystems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("libvirt")
    from machine.drivers.libvirt import bootplan

    _machine_os(tmp_path, monkeypatch, {"share_filesystems": DEBIAN12_CLOUD})
    monkeypatch.setattr(bootplan, "make_data_disk", lambda path, size: path.write_bytes(b""))
    plan = bootplan.plan("machine-os", name="dev", storage=tmp_path / "st", seed_path=None, disk_size_mb=64,
                         cache_dir=None)
    assert plan.guest_share_fs == DEBIAN12_CLOUD


# -- the image build: what the manifest declares -------------------------------------------------------------------


def _isos_build():
    import importlib.util

    spec = importlib.util.spec_from_file_location("machine_os_build", Path(__file__).resolve().parents[1] /
                                                  "isos" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_build_declares_the_share_filesystems_its_kernel_and_modules_have() -> None:
    build = _isos_build()
    # Debian 12's linux-image-cloud-amd64 6.1 (its /boot/config): no CONFIG_9P_FS, no vboxsf
    cloud = "CONFIG_FUSE_FS=m\nCONFIG_VIRTIO_FS=m\nCONFIG_CIFS=m\nCONFIG_NET_9P_VIRTIO=m\nCONFIG_VBOXGUEST=m\n" \
            "# CONFIG_9P_FS is not set\n"
    kept = {"fuse", "virtiofs", "cifs", "9pnet_virtio", "vboxguest", "ext4"}
    assert build.share_filesystems(cloud, kept) == ["cifs", "fuse", "virtiofs"]
    assert build.share_filesystems(cloud, kept - {"cifs"}) == ["fuse", "virtiofs"]  # trimmed away: not declared
    # Debian 13's generic kernel 6.12: fuse and virtiofs built in, 9p and vboxsf as modules
    generic = "CONFIG_FUSE_FS=y\nCONFIG_VIRTIO_FS=y\nCONFIG_9P_FS=m\nCONFIG_NET_9P_VIRTIO=m\nCONFIG_CIFS=m\n" \
              "CONFIG_VBOXSF_FS=m\nCONFIG_VBOXGUEST=m\n"
    assert build.share_filesystems(generic, {"9p", "9pnet_virtio", "vboxsf", "vboxguest"}) == \
        ["9p", "fuse", "vboxsf", "virtiofs"]
    assert build.share_filesystems(generic, {"9p"}) == ["fuse", "virtiofs"]  # 9p without its virtio transport
    assert set(build.SHARE_FS) == set(mechanisms.GUEST_FS.values())  # every mechanism's file system is declared
