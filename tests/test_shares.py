"""Shared folders without a VM: --share parsing and validation, the default home share, the seed the guest
reads (rendered, rewritten by `machine set`, and turned into mount commands by the guest's own seed.jq), the
qemu argv per mechanism, doctor's line, and create/set/inspect through the CLI with the `none`-free path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fakes.cli import run

from machine.errors import UsageError
from machine.provision import seediso as seed
from machine.shares import boot, mechanisms, spec
from tests.seedreader import guest_mount_calls

ROOT = Path(__file__).resolve().parent.parent


# -- parsing ------------------------------------------------------------------------------------------


def test_parse_forms(tmp_path: Path) -> None:
    assert spec.parse(f"{tmp_path}") == spec.Share(str(tmp_path), str(tmp_path), False)
    assert spec.parse(f"{tmp_path}:/src") == spec.Share(str(tmp_path), "/src", False)
    assert spec.parse(f"{tmp_path}:/src:ro") == spec.Share(str(tmp_path), "/src", True)
    assert spec.parse(f"{tmp_path}:ro") == spec.Share(str(tmp_path), str(tmp_path), True)
    assert spec.parse(f"{tmp_path}:/src:rw").ro is False
    with pytest.raises(UsageError, match="too many"):
        spec.parse(f"{tmp_path}:/a:/b")
    with pytest.raises(UsageError, match="host folder is missing"):
        spec.parse(":/src")


def test_windows_paths_map_like_docker_machine() -> None:
    assert spec.guest_path_for("C:\\Users") == "/c/Users"
    assert spec.guest_path_for("D:\\projects\\src") == "/d/projects/src"
    s = spec.parse("C:\\Users\\me:/w:ro")
    assert (s.guest, s.ro) == ("/w", True) and s.host.startswith("C:")
    dflt = spec.default_share("win32")
    assert dflt is not None and dflt.host.endswith("\\Users") and dflt.guest.endswith("/Users")


def test_default_share_is_home_at_same_path_unless_it_would_hide_the_guest(tmp_path: Path) -> None:
    home = tmp_path / "home" / "me"
    assert spec.default_share("linux", home) == spec.Share(str(home), str(home), False)
    assert spec.default_share("linux", Path("/root")) is None  # /root is the guest login's home (its keys)
    assert spec.default_share("linux", Path("/home/me")) == spec.Share("/home/me", "/home/me")


def test_validation_names_the_bad_share(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "a" / "b").mkdir(parents=True)
    with pytest.raises(UsageError, match=f"{tmp_path / 'missing'} does not exist"):
        spec.validate([spec.parse(str(tmp_path / "missing"))])
    with pytest.raises(UsageError, match="is not a folder"):
        spec.validate([spec.parse(str(tmp_path / "file"))])
    with pytest.raises(UsageError, match="overlap") as e:
        spec.validate([spec.parse(f"{tmp_path / 'a'}:/x"), spec.parse(f"{tmp_path / 'a' / 'b'}:/y")])
    assert str(tmp_path / "a") in e.value.message
    with pytest.raises(UsageError, match="overlap in the machine"):
        spec.validate([spec.Share(str(tmp_path / "a" / "b"), "/x/y"), spec.Share(str(tmp_path / "c"), "/x")]) \
            if (tmp_path / "c").mkdir() is None else None
    for guest in ("/etc", "/usr/local/src", "/", "/var/lib/docker/x", "/root", "/tmp", "/mnt"):
        with pytest.raises(UsageError, match="would cover the machine's own"):
            spec.validate([spec.Share(str(tmp_path), guest)])
    with pytest.raises(UsageError, match="not an absolute path"):
        spec.validate([spec.Share(str(tmp_path), "rel/path")])
    ok = spec.validate([spec.Share(str(tmp_path / "a"), "/var/www"), spec.Share(str(tmp_path / "c"), "/root/src")])
    assert ok == [spec.Share(str((tmp_path / "a").resolve()), "/var/www"),
                  spec.Share(str((tmp_path / "c").resolve()), "/root/src")]


def test_plan_adds_the_default_and_drops_it_when_a_share_overlaps(tmp_path: Path) -> None:
    home, src = tmp_path / "home", tmp_path / "src"
    home.mkdir()
    src.mkdir()
    dflt = spec.Share(str(home), str(home))
    shares, with_default = spec.plan((f"{src}:/src:ro",), False, dflt)
    assert with_default and shares == [dflt, spec.Share(str(src), "/src", True)]
    shares, with_default = spec.plan((f"{home}:/h",), False, dflt)  # the user shares home elsewhere: no twice
    assert not with_default and shares == [spec.Share(str(home), "/h")]
    assert spec.plan((), True, dflt) == ([], False)
    with pytest.raises(UsageError, match="cannot be used together"):
        spec.plan((str(src),), True, dflt)
    assert spec.guest_entries(shares) == [{"tag": "msh0", "path": "/h", "ro": False}]


# -- the seed and the guest's reading of it -----------------------------------------------------------


def _seed(tmp_path: Path, shares: list[dict]) -> Path:
    return seed.build_seed(tmp_path / "seed.iso", instance_id="i-1", hostname="m1",
                           authorized_keys=["ssh-ed25519 AAAA k"],
                           files=[seed.SeedFile("/etc/x", "y")], shares=shares)


def _user_data(path: Path) -> dict:
    raw = seed.read_iso(path)["user-data"].decode()
    assert raw.startswith(seed.CLOUD_CONFIG_HEADER)
    return json.loads(raw[len(seed.CLOUD_CONFIG_HEADER):])


def test_seed_carries_shares_and_set_rewrites_only_them(tmp_path: Path) -> None:
    entries = [{"tag": "msh0", "path": "/home/me", "ro": False}]
    iso = _seed(tmp_path, entries)
    before = seed.read_iso(iso)
    assert _user_data(iso)[seed.SHARES_KEY] == entries
    seed.replace_shares(iso, [{"tag": "msh0", "path": "/src", "ro": True}])
    after = seed.read_iso(iso)
    assert after["meta-data"] == before["meta-data"]  # same instance: write_files are not applied again
    ud = _user_data(iso)
    assert ud[seed.SHARES_KEY] == [{"tag": "msh0", "path": "/src", "ro": True}]
    assert ud["write_files"] == json.loads(before["user-data"].decode().split("\n", 1)[1])["write_files"]
    seed.replace_shares(iso, [])
    assert seed.SHARES_KEY not in _user_data(iso)


@pytest.mark.skipif(not shutil.which("jq"), reason="jq is not installed")
def test_guest_seed_reader_emits_one_mount_per_share(tmp_path: Path) -> None:
    entries = [{"tag": "msh0", "path": "/home/me/it's here", "ro": False},
               {"tag": "msh1", "path": "/src", "ro": True}]
    # what rc.sysinit would mount: a mount_share that records its arguments
    calls = guest_mount_calls(tmp_path, entries, 'printf "%s|%s|%s\\n" "$1" "$2" "$3"')
    assert calls == ["msh0|/home/me/it's here|false", "msh1|/src|true"]


def test_boot_report_from_the_console(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text("machine-os: formatting blank data disk /dev/vdb\r\n"
                   "machine-os: share-mounted: msh0 /home/me virtiofs\r\n"
                   "machine-os: share-failed: msh1 /src: no virtiofs, 9p or vboxsf device with this tag\n"
                   "machine-os: ssh-ready\n")
    mounted, failed = boot.report(log)
    assert mounted == ["msh0 /home/me virtiofs"]
    assert boot.errors(log, {"msh1": "/home/me/src"}) == [
        "share /home/me/src: no virtiofs, 9p or vboxsf device with this tag"]
    assert boot.report(tmp_path / "absent") == ([], [])


# -- mechanisms and the qemu argv ---------------------------------------------------------------------


def test_mechanism_choice_and_doctor_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mechanisms, "find_virtiofsd", lambda: None)
    assert mechanisms.choose(("virtiofs", "9p"), "linux").mechanism == "9p"
    line = mechanisms.explain(("virtiofs", "9p"), "linux")
    assert line.startswith("9p: ") and "not virtiofs: virtiofsd not found" in line
    assert mechanisms.choose(("virtiofs", "9p"), "win32") is None
    assert mechanisms.explain((), "linux").startswith("no shared folders")
    assert mechanisms.explain(("virtiofs",), "darwin") == "none usable here: not virtiofs: virtiofsd runs on " \
                                                          "Linux hosts only"


def test_qemu_argv_for_virtiofs_and_9p(tmp_path: Path) -> None:
    from machine.drivers.qemu import cmdline

    base = dict(name="m", qemu="qemu-system-x86_64", platform="linux", arch="x86_64", accel="tcg", cpus=2,
                memory_mib=768, console_log=tmp_path / "c.log", qmp="unix:/q.sock", ssh_port=2222,
                engine_host_port=2376)
    args = cmdline.build_args(cmdline.VMSpec(**base, virtiofs=(("msh0", "/d/virtiofs0.sock"),)))
    joined = " ".join(args)
    assert "-object memory-backend-memfd,id=mem,size=768M,share=on -numa node,memdev=mem" in joined
    assert "-chardev socket,id=vfs0,path=/d/virtiofs0.sock" in joined
    assert "-device vhost-user-fs-pci,chardev=vfs0,tag=msh0,queue-size=1024" in joined
    args = cmdline.build_args(cmdline.VMSpec(**base, ninep=(("msh0", "/h/a,b", False), ("msh1", "/s", True))))
    joined = " ".join(args)
    assert "memory-backend-memfd" not in joined
    assert "-fsdev local,id=fs0,path=/h/a,,b,security_model=none -device virtio-9p-pci,fsdev=fs0," \
           "mount_tag=msh0" in joined
    assert "-fsdev local,id=fs1,path=/s,security_model=none,readonly=on" in joined


# -- the CLI: validation before anything is made; set and inspect ----------------------------------------


def test_create_refuses_a_bad_share_and_makes_nothing(store_root: Path, tmp_path: Path) -> None:
    res = run("create", "-d", "qemu", "--share", str(tmp_path / "nope"), "m1")
    assert res.code == 2 and f"Shared folder {tmp_path / 'nope'} does not exist" in res.err, res
    (tmp_path / "a" / "b").mkdir(parents=True)
    res = run("create", "-d", "qemu", "--share", str(tmp_path / "a"), "--share", f"{tmp_path / 'a' / 'b'}:/b", "m1")
    assert res.code == 2 and "overlap" in res.err and str(tmp_path / "a") in res.err, res
    res = run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "--share", str(tmp_path), "m1")
    assert res.code == 2 and "Driver 'none' cannot share folders" in res.err, res
    assert not (store_root / "machines" / "m1").exists()


def test_set_replaces_the_shares_of_a_stopped_machine_and_inspect_shows_them(store_root: Path, tmp_path: Path
                                                                           ) -> None:
    from test_set import qemu_machine

    src = tmp_path / "src"
    src.mkdir()
    store = qemu_machine(store_root)
    mdir = store.machine_dir("dev")
    _seed(mdir, [])
    res = run("set", "dev", "--share", f"{src}:/src:ro")
    assert res.code == 0, res
    assert f"shared folders: none -> {src} -> /src (read-only)" in res.out
    assert _user_data(mdir / "seed.iso")[seed.SHARES_KEY] == [{"tag": "msh0", "path": "/src", "ro": True}]
    view = json.loads(run("inspect", "dev").out)
    assert view["Shares"] == [{"HostPath": str(src), "GuestPath": "/src", "ReadOnly": True}]
    res = run("set", "dev", "--share", str(tmp_path / "gone"))
    assert res.code == 2 and "does not exist" in res.err
    res = run("set", "dev", "--no-share")
    assert res.code == 0 and "-> none" in res.out, res
    assert seed.SHARES_KEY not in _user_data(mdir / "seed.iso")
    assert json.loads(run("inspect", "dev").out)["Shares"] == []


def test_libvirt_filesystems_follow_the_shares() -> None:
    from machine.drivers.libvirt import sharesxml

    base = "<domain type='qemu'><name>m</name><os><type>hvm</type></os><devices><disk/></devices></domain>"
    shares = [{"tag": "msh0", "host": "/home/me", "ro": False}, {"tag": "msh1", "host": "/src", "ro": True}]
    xml = sharesxml.with_shares(base, shares, "virtiofs", "/usr/lib/qemu/virtiofsd")
    assert "<memoryBacking><source type=\"memfd\" /><access mode=\"shared\" /></memoryBacking><os>" in xml
    assert '<driver type="virtiofs" queue="1024" /><binary path="/usr/lib/qemu/virtiofsd" />' \
           '<source dir="/home/me" /><target dir="msh0" />' in xml
    assert sharesxml.shares_of(xml) == [("virtiofs", "/home/me", "msh0", False),
                                        ("virtiofs", "/src", "msh1", False)]
    ninep = sharesxml.with_shares(xml, shares[1:], "9p")
    assert "memoryBacking" not in ninep and 'accessmode="squash"' in ninep
    assert sharesxml.shares_of(ninep) == [("9p", "/src", "msh1", True)]
    assert sharesxml.shares_of(sharesxml.with_shares(ninep, [], None)) == []
    assert "<disk />" in sharesxml.with_shares(ninep, [], None)  # the rest of the domain stays


def test_fstab_block_for_guests_mounted_over_ssh() -> None:
    from machine.provision import sharemounts

    entries = [{"tag": "msh0", "host": "/h", "guest": "/home/me/my src", "ro": False},
               {"tag": "msh1", "host": "/d", "guest": "/data", "ro": True}]
    lines = sharemounts.fstab_lines(entries, "9p")
    assert lines[0] == ("msh0 /home/me/my\\040src 9p trans=virtio,version=9p2000.L,msize=262144,cache=mmap,nofail "
                        "0 0 # machine share")
    virtiofs = sharemounts.fstab_lines(entries, "virtiofs")
    assert virtiofs[1] == "msh1 /data virtiofs defaults,nofail,ro 0 0 # machine share"
    current = "UUID=abc / ext4 errors=remount-ro 0 1\nold /x virtiofs defaults,nofail 0 0 # machine share\n"
    merged = sharemounts.merged_fstab(current, lines[1:])
    assert merged.splitlines() == ["UUID=abc / ext4 errors=remount-ro 0 1", lines[1]]
    assert sharemounts.merged_fstab(merged, []) == "UUID=abc / ext4 errors=remount-ro 0 1\n"
