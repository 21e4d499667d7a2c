"""--engine-archive over the shim guest (provision_guest.py): Docker's static archive and offline bundles of
.deb/.rpm/.apk packages, uploaded over SFTP and installed with the OS's tool without network."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
from provision_guest import Guest, _check_shims_are_used, _machine, _provision
from test_provision_remote import DEBIAN

from machine.commands.createoptions import request_from_options
from machine.errors import MachineError, UsageError
from machine.provision import archive

# -- --engine-archive: a local static archive or an offline bundle of packages ---------------------------------

def _static_tgz(path: Path) -> Path:
    src = path.parent / "static-src" / "docker"
    src.mkdir(parents=True)
    (src / "dockerd").write_text("#!/bin/sh\n")
    (src / "dockerd").chmod(0o755)
    (src / "containerd").write_text("#!/bin/sh\n")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="docker")
    return path


def _bundle_dir(path: Path, *names: str) -> Path:
    path.mkdir()
    for name in names:
        (path / name).write_text(f"content-of-{name}")
    return path


def test_offline_deb_bundle_directory(store_root: Path, guest: Guest, tmp_path: Path) -> None:
    guest.os_release(DEBIAN)
    bundle = _bundle_dir(tmp_path / "bundle", "docker.io_20.10_amd64.deb", "containerd_1.6_amd64.deb")
    (bundle / "README").write_text("not a package")
    store, cfg, driver = _machine(store_root, guest, archive=str(bundle))
    _check_shims_are_used(guest, store, cfg, driver)
    out = _provision(store, cfg, driver)
    assert "Installing the Docker engine (debian)... done" in out and "Docker is up and running!" in out
    log = guest.log()
    apt = [x for x in log if x.startswith("apt-get")]
    assert len(apt) == 1 and "update" not in apt[0], log  # no network: nothing fetched, no lists updated
    tmpdirs = list((guest.root / "tmp").glob("machine-engine-*"))
    assert tmpdirs == []  # cleaned up
    assert apt[0].startswith(f"apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "
                             f"{guest.root}/tmp/machine-engine-")
    files = apt[0].split(" [")[0].split()[-2:]  # the glob over the upload directory, README not uploaded
    assert [Path(f).name for f in files] == ["containerd_1.6_amd64.deb", "docker.io_20.10_amd64.deb"]
    # the shim saw the uploaded files themselves (not the README), and the engine was kept from starting
    assert sorted(x for x in log if x.startswith("file ")) == [
        "file containerd_1.6_amd64.deb content-of-containerd_1.6_amd64.deb",
        "file docker.io_20.10_amd64.deb content-of-docker.io_20.10_amd64.deb"]
    assert "policy-rc.d exits 101" in log
    assert not (guest.root / "usr/sbin/policy-rc.d").exists()  # ours is removed again
    assert (guest.root / "usr/sbin/dockerd").exists() and guest.starts == 1
    # the option is saved: `machine provision` on a machine that lost its engine installs from it again
    store.save(cfg)
    cfg = store.load("m")
    assert cfg.engine["archive"] == str(bundle)
    (guest.root / "usr/sbin/dockerd").unlink()
    assert "Installing the Docker engine (debian)... done" in _provision(store, cfg, driver)
    assert len([x for x in guest.log() if x.startswith("apt-get")]) == 2
    # with the engine present, nothing is installed (configure only)
    assert "Installing" not in _provision(store, cfg, driver)
    assert len([x for x in guest.log() if x.startswith("apt-get")]) == 2


def test_offline_bundle_tar_gz_keeps_the_hosts_policy_rc_d(store_root: Path, guest: Guest, tmp_path: Path) -> None:
    guest.os_release('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n')
    (guest.root / "usr/sbin").mkdir(parents=True)
    (guest.root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 0\n")
    (guest.root / "usr/sbin/policy-rc.d").chmod(0o755)
    tgz = tmp_path / "bundle.tar.gz"
    src = _bundle_dir(tmp_path / "src", "docker.io_1_amd64.deb")
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src, arcname="offline/debs")  # nested: only the file names count
    store, cfg, driver = _machine(store_root, guest, archive=str(tgz))
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    log = guest.log()
    assert "file docker.io_1_amd64.deb content-of-docker.io_1_amd64.deb" in log
    assert "policy-rc.d exits 0" in log and (guest.root / "usr/sbin/policy-rc.d").read_text().endswith("exit 0\n")
    assert not [x for x in log if x.startswith("apt-get") and "update" in x]


def test_offline_rpm_bundle_on_fedora(store_root: Path, guest: Guest, tmp_path: Path) -> None:
    guest.os_release("ID=fedora\nVERSION_ID=40\n")
    bundle = _bundle_dir(tmp_path / "rpms", "moby-engine-24.0.rpm", "containerd-1.7.rpm")
    store, cfg, driver = _machine(store_root, guest, archive=str(bundle))
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    dnf = [x for x in guest.log() if x.startswith("dnf")]
    assert len(dnf) == 1 and dnf[0].startswith(f"dnf install -y --disablerepo=* {guest.root}/tmp/machine-engine-")
    assert "file moby-engine-24.0.rpm content-of-moby-engine-24.0.rpm" in guest.log()


def test_packages_of_the_wrong_family_are_refused(store_root: Path, guest: Guest, tmp_path: Path) -> None:
    guest.os_release(DEBIAN)
    bundle = _bundle_dir(tmp_path / "rpms", "moby-engine-24.0.rpm")
    store, cfg, driver = _machine(store_root, guest, archive=str(bundle))
    _check_shims_are_used(guest, store, cfg, driver)
    with pytest.raises(MachineError, match=r"holds \.rpm packages, but 'm' runs debian, which installs \.deb") as e:
        _provision(store, cfg, driver)
    assert ".deb packages" in e.value.hint
    assert guest.log() == [] and not (guest.root / "tmp").exists()  # refused before anything was uploaded


def test_static_archive_given_as_engine_archive(store_root: Path, guest: Guest, tmp_path: Path) -> None:
    guest.os_release(DEBIAN)
    tgz = _static_tgz(tmp_path / "docker-27.0.1.tgz")
    assert archive.inspect_local(tgz).kind == "static"
    store, cfg, driver = _machine(store_root, guest, archive=str(tgz))
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    assert (guest.root / "usr/local/bin/dockerd").stat().st_mode & 0o111
    assert (guest.root / "usr/local/bin/containerd").exists()
    assert "ExecStart=/usr/local/bin/dockerd" in (guest.root / "etc/systemd/system/docker.service").read_text()
    assert not [x for x in guest.log() if x.startswith("apt-get")]


def test_engine_archive_input_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or directory") as e:
        archive.inspect_local(tmp_path / "missing.tgz")
    assert "static archive" in e.value.hint
    with pytest.raises(UsageError, match="no engine and no .deb/.rpm/.apk packages"):
        archive.inspect_local(_bundle_dir(tmp_path / "empty"))
    with pytest.raises(UsageError, match=r"mixes package types \(\.deb, \.rpm\)"):
        archive.inspect_local(_bundle_dir(tmp_path / "mixed", "a.deb", "b.rpm"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UsageError, match="not a readable tar archive"):
        archive.inspect_local(tmp_path / "notes.txt")
    one = archive.inspect_local(_bundle_dir(tmp_path / "one", "x.apk") / "x.apk")
    assert (one.kind, one.package_type, one.packages) == ("packages", "apk", ("x.apk",))
    with pytest.raises(MachineError, match="is built for aarch64, but 'm' is x86_64"):
        archive.check_fits(archive.LocalArchive(tmp_path, "static", arch="aarch64"), "debian", "x86_64", "m")


def test_create_options_for_engine_archive(store_root: Path, tmp_path: Path) -> None:
    bundle = _bundle_dir(tmp_path / "debs", "a.deb")
    req = request_from_options("m", "generic", engine_archive=str(bundle))
    assert req.engine["archive"] == str(bundle) and not req.engine["version"]
    with pytest.raises(UsageError, match="--engine-archive and --engine-version cannot be used together"):
        request_from_options("m", "generic", engine_archive=str(bundle), engine_version="27.0.1")
    with pytest.raises(UsageError, match="--engine-version and --engine-install-url cannot be used together"):
        request_from_options("m", "generic", engine_version="27.0.1", engine_install_url="https://get.docker.com")
    with pytest.raises(UsageError, match="no such file"):
        request_from_options("m", "generic", engine_archive=str(tmp_path / "nope"))


def test_deb_command_falls_back_to_dpkg_without_apt_get(tmp_path: Path) -> None:
    """The generated command, run by a local sh whose PATH has dpkg but no apt-get."""
    import subprocess

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "mkdir", "dirname", "printf", "chmod", "rm", "cat"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    (bindir / "dpkg").write_text(f"#!/bin/sh\necho \"dpkg $*\" >{tmp_path}/log\n{tmp_path}/sbin/policy-rc.d; "
                                 f"echo \"policy $?\" >>{tmp_path}/log\n")
    (bindir / "dpkg").chmod(0o755)
    debs = _bundle_dir(tmp_path / "debs", "a.deb", "b.deb")
    cmd = archive.offline_install_command("deb", str(debs), str(tmp_path / "sbin/policy-rc.d"))
    res = subprocess.run([str(bindir / "sh"), "-c", cmd], env={"PATH": str(bindir)}, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "log").read_text().splitlines() == [f"dpkg -i {debs}/a.deb {debs}/b.deb", "policy 101"]
    assert not (tmp_path / "sbin/policy-rc.d").exists()
