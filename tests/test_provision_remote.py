"""The per-OS provisioners run for real over SSH, without touching this host.

A local sshd whose sessions get PATH=<shims>:... (`SetEnv`) stands in for the guest: `systemctl`,
`apt-get`, `dnf`, `apk`, `rc-service`, `rc-update` and `curl` are shims that log their arguments (and
whether daemon.json existed at that moment) and "install" dockerd into a fake root directory. Every
guest path the provisioner touches is below that root (`machine.provision.remote.ROOT`). A test
first checks that the session really resolves `apt-get` to the shim and refuses to run otherwise.
When a shim "starts" the engine, a mutual-TLS stand-in (`FakeEngine`) serves the uploaded certificate
on the engine port, so the host-side TLS check runs for real too.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile
import threading
from pathlib import Path

import pytest
from machine.drivers.generic import DRIVER as Generic
from test_provision import FakeEngine
from test_ssh import SSHServer, free_port, start_sshd, stop_sshd

from machine import certs, waiting
from machine.commands.create import request_from_options
from machine.driver import DriverContext
from machine.errors import MachineError, UsageError
from machine.progress import Progress
from machine.provision import archive, check_certs
from machine.provision import remote as remote_mod
from machine.provision.run import after_start, provision
from machine.provision.seeding import prepare
from machine.store import MachineConfig, Store

SHIMS = {
    "systemctl": """case "$1" in
  show) echo '{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS ; ignore_errors=no }' ;;
  restart|start) case "$*" in *docker*) gen ;; esac ;;
  is-enabled) [ -L $R/etc/systemd/system/multi-user.target.wants/docker.service ] || exit 1 ;;
esac""",
    "apt-get": 'case "$*" in *install*) dockerd usr/sbin ;; esac',
    "dnf": 'case "$*" in "install -y moby-engine"|*docker-ce*|*--disablerepo*) dockerd usr/bin ;; esac',
    "apk": 'case "$*" in *add*) dockerd usr/bin ;; esac',
    "rc-update": ":",
    "rc-service": 'case "$*" in *restart*|*start*) gen ;; esac',
    "curl": """out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
printf '#!/bin/sh\\nmkdir -p %s/usr/bin && printf x > %s/usr/bin/dockerd && chmod +x %s/usr/bin/dockerd\\n' \
  "$R" "$R" "$R" > "$out\"""",
}


class Guest:
    """The sshd with shims, plus the fake root and the engine stand-in for one test."""

    def __init__(self, server: SSHServer, shims: Path, root: Path, engine_port: int) -> None:
        self.server, self.shims, self.root, self.port = server, shims, root, engine_port
        self.engine: FakeEngine | None = None
        self.starts = 0
        self._stop = threading.Event()
        (shims / "ROOT").write_text(str(root))
        (shims / "log").write_text("")
        (shims / "gen").write_text("0")
        threading.Thread(target=self._watch, daemon=True).start()

    def os_release(self, text: str) -> None:
        (self.root / "etc").mkdir(parents=True, exist_ok=True)
        (self.root / "etc/os-release").write_text(text)

    def log(self) -> list[str]:
        return (self.shims / "log").read_text().splitlines()

    def _watch(self) -> None:
        seen = 0
        while not self._stop.wait(0.05):
            gen = int((self.shims / "gen").read_text() or 0)
            if gen != seen:
                seen = gen
                if self.engine:
                    self.engine.close()
                etc = self.root / "etc/docker"
                self.engine = FakeEngine(etc / "server.pem", etc / "server-key.pem", etc / "ca.pem", port=self.port)
                self.starts += 1

    def close(self) -> None:
        self._stop.set()
        if self.engine:
            self.engine.close()


@pytest.fixture(scope="module")
def shim_sshd(tmp_path_factory: pytest.TempPathFactory):
    shims = tmp_path_factory.mktemp("shims")
    for name, body in SHIMS.items():
        script = shims / name
        script.write_text(
            f"#!/bin/sh\nS={shims}; R=$(cat $S/ROOT)\n"
            'have() { [ -e $R/etc/docker/daemon.json ] && echo yes || echo no; }\n'
            'echo "$(basename $0) $* [daemon.json:$(have)]" >>$S/log\n'
            'gen() { echo $(($(cat $S/gen) + 1)) >$S/gen; }\n'
            'dockerd() { mkdir -p $R/$1 && printf x >$R/$1/dockerd && chmod +x $R/$1/dockerd; }\n'
            # package files given as arguments: name and content, and whether policy-rc.d blocks starts
            'for a; do case "$a" in *.deb|*.rpm|*.apk) echo "file $(basename "$a") $(cat "$a")" >>$S/log ;; esac; '
            'done\n'
            'case "$*" in *.deb*) [ -x $R/usr/sbin/policy-rc.d ] && echo "policy-rc.d exits $($R/usr/sbin/policy-rc.d; '
            'echo $?)" >>$S/log ;; esac\n'
            f"{body}\nexit 0\n")
        script.chmod(0o755)
    server = start_sshd(tmp_path_factory.mktemp("sshd-shims"),
                        f"SetEnv PATH={shims}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n")
    yield server, shims
    stop_sshd(server)


@pytest.fixture
def guest(shim_sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server, shims = shim_sshd
    root = tmp_path / "root"
    root.mkdir()
    g = Guest(server, shims, root, free_port())
    monkeypatch.setattr(remote_mod, "ROOT", str(root))
    yield g
    g.close()


class MovedGeneric(Generic):
    """A generic host whose address (as the driver reports it) changed to 127.0.0.2."""

    def ip(self) -> str | None:
        return "127.0.0.2"


def _machine(store_root: Path, g: Guest, name: str = "m", cls: type = Generic, **engine) -> tuple:
    store = Store(store_root)
    cfg = MachineConfig(name=name, driver="generic", engine={"transport": "tls", "port": g.port, **engine})
    options = {"ip_address": "127.0.0.1", "ssh_port": g.server.port, "ssh_user": "root",
               "ssh_key": str(g.server.client_key), "engine_port": g.port}
    ctx = DriverContext(name=name, machine_dir=store.make_machine_dir(name), options=options,
                        cache_dir=store.cache_dir, engine_port=g.port)
    prepare(store, cfg, ctx)
    driver = cls(ctx)
    driver.create()
    cfg.ssh["key"] = driver.data["ssh_key"]
    return store, cfg, driver


def _provision(store, cfg, driver) -> str:
    out = io.StringIO()
    provision(store, cfg, driver, Progress(stream=out))
    return out.getvalue()


def _check_shims_are_used(g: Guest, store, cfg, driver) -> None:
    with remote_mod.open_session(store, cfg, driver) as s:
        found = s.run("command -v apt-get systemctl", check=False).stdout.split()
    if found != [str(g.shims / "apt-get"), str(g.shims / "systemctl")]:
        pytest.skip(f"sshd did not apply SetEnv PATH (found {found}); refusing to run provisioners on this host")


DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def test_debian_installs_and_configures_systemd_engine(store_root: Path, guest: Guest,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    guest.os_release(DEBIAN)
    store, cfg, driver = _machine(store_root, guest, env=["HTTP_PROXY=http://proxy:3128"], labels=["a=b"])
    _check_shims_are_used(guest, store, cfg, driver)
    caplog.set_level(logging.DEBUG)
    out = _provision(store, cfg, driver)
    assert "Docker is up and running!" in out and "Installing the Docker engine (debian)... done" in out
    assert cfg.engine["url"] == f"tcp://127.0.0.1:{guest.port}" and cfg.ssh["os"] == "debian"
    log = guest.log()
    assert log[0].startswith("apt-get -o DPkg::Lock::Timeout=300 update")
    assert log[1].startswith("apt-get -o DPkg::Lock::Timeout=300 install -y -q docker.io apparmor")
    rest = [line for line in log if line.startswith("systemctl")]
    assert rest == [
        "systemctl show -p ExecStart --value docker.service [daemon.json:no]",
        "systemctl mask --runtime docker.socket [daemon.json:no]",  # socket activation off first
        "systemctl stop docker.socket docker.service [daemon.json:no]",
        "systemctl unmask --no-reload --runtime docker.socket [daemon.json:yes]",  # only after the config is written
        "systemctl is-enabled -q docker.service [daemon.json:yes]",
        "systemctl enable --no-reload docker.service [daemon.json:yes]",
        "systemctl daemon-reload [daemon.json:yes]",  # one reload for all of it
        "systemctl restart docker.service [daemon.json:yes]",
    ]
    dropin = (guest.root / "etc/systemd/system/docker.service.d/10-machine.conf").read_text()
    assert "ExecStart=\nExecStart=/usr/sbin/dockerd $DOCKER_OPTS\n" in dropin
    assert 'Environment="HTTP_PROXY=http://proxy:3128"' in dropin
    conf = json.loads((guest.root / "etc/docker/daemon.json").read_text())
    assert conf["hosts"] == ["unix:///var/run/docker.sock", f"tcp://0.0.0.0:{guest.port}"] and conf["tlsverify"]
    assert conf["labels"] == ["a=b", "provider=generic"]
    key = guest.root / "etc/docker/server-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_bytes() == (store.machine_dir("m") / "server-key.pem").read_bytes()
    assert guest.starts == 1
    assert "PRIVATE KEY" not in caplog.text
    assert "run: systemctl unmask --no-reload --runtime docker.socket" in caplog.text


def test_ubuntu_with_an_engine_installs_nothing(store_root: Path, guest: Guest) -> None:
    guest.os_release('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n')
    (guest.root / "etc/docker").mkdir(parents=True)
    (guest.root / "etc/docker/daemon.json").write_text('{"log-driver": "journald"}\n')
    (guest.root / "usr/bin").mkdir(parents=True)
    (guest.root / "usr/bin/dockerd").write_text("x")
    (guest.root / "usr/bin/dockerd").chmod(0o755)
    wants = guest.root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "docker.service").symlink_to("/lib/systemd/system/docker.service")  # enabled by its package
    store, cfg, driver = _machine(store_root, guest)
    _check_shims_are_used(guest, store, cfg, driver)
    out = _provision(store, cfg, driver)
    assert "Installing" not in out and "Docker is up and running!" in out
    assert not [x for x in guest.log() if x.startswith("apt-get")]
    assert not [x for x in guest.log() if x.startswith("systemctl enable")]  # enabled already: no sysv sync
    # the host's own daemon.json is kept once, not overwritten by later runs
    backup = guest.root / "etc/docker/daemon.json.before-machine"
    assert backup.read_text() == '{"log-driver": "journald"}\n'
    _provision(store, cfg, driver)
    assert backup.read_text() == '{"log-driver": "journald"}\n'


@pytest.mark.parametrize("release,expect", [
    ('ID=fedora\nVERSION_ID=40\n', ["dnf install -y moby-engine"]),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n',
     ["dnf install -y dnf-plugins-core", "dnf config-manager --add-repo https://download.docker.com/linux/centos/"
      "docker-ce.repo", "dnf install -y docker-ce docker-ce-cli containerd.io"]),
])
def test_fedora_and_rhel_family(store_root: Path, guest: Guest, release: str, expect: list[str]) -> None:
    guest.os_release(release)
    store, cfg, driver = _machine(store_root, guest)
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    dnf = [x.split(" [")[0] for x in guest.log() if x.startswith("dnf")]
    assert dnf == expect
    assert (guest.root / "etc/systemd/system/docker.service.d/10-machine.conf").exists()


def test_alpine_uses_openrc(store_root: Path, guest: Guest) -> None:
    guest.os_release("ID=alpine\nVERSION_ID=3.20.0\n")
    (guest.root / "etc/conf.d").mkdir(parents=True)
    (guest.root / "etc/conf.d/docker").write_text('DOCKER_OPTS=""\n')
    store, cfg, driver = _machine(store_root, guest, env=["NO_PROXY=.local"])
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    log = [x.split(" [")[0] for x in guest.log()]
    assert log == ["apk add --no-cache docker", "rc-update add docker default", "rc-service docker restart"]
    conf = (guest.root / "etc/conf.d/docker").read_text()
    assert conf.startswith('DOCKER_OPTS=""\n') and "export NO_PROXY=.local\n" in conf
    _provision(store, cfg, driver)  # again: the managed block is replaced, not repeated
    assert (guest.root / "etc/conf.d/docker").read_text().count("# BEGIN machine") == 1


def test_install_script_url(store_root: Path, guest: Guest) -> None:
    guest.os_release(DEBIAN)
    store, cfg, driver = _machine(store_root, guest, install_url="https://get.docker.com")
    _check_shims_are_used(guest, store, cfg, driver)
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    assert any(x.startswith("curl -fsSL https://get.docker.com -o ") for x in guest.log())
    assert not [x for x in guest.log() if x.startswith("apt-get")]
    assert (guest.root / "usr/bin/dockerd").exists() and not (guest.root / "tmp/install-docker.sh").exists()


def test_engine_archive_from_the_local_cache(store_root: Path, guest: Guest, tmp_path: Path) -> None:
    guest.os_release(DEBIAN)
    store = Store(store_root)
    tgz = store.cache_dir / "engine" / "docker-27.0.1-x86_64.tgz"
    tgz.parent.mkdir(parents=True)
    src = tmp_path / "docker"
    src.mkdir()
    (src / "dockerd").write_text("#!/bin/sh\n")
    (src / "dockerd").chmod(0o755)
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src, arcname="docker")
    store, cfg, driver = _machine(store_root, guest, version="27.0.1")
    _check_shims_are_used(guest, store, cfg, driver)
    if shutil.which("uname") is None:
        pytest.skip("no uname")
    assert "Docker is up and running!" in _provision(store, cfg, driver)
    assert (guest.root / "usr/local/bin/dockerd").stat().st_mode & 0o111
    unit = (guest.root / "etc/systemd/system/docker.service").read_text()
    assert "ExecStart=/usr/local/bin/dockerd" in unit
    assert not [x for x in guest.log() if x.startswith("apt-get")]
    assert not (guest.root / "tmp/docker-engine.tgz").exists()


def test_unsupported_os_fails_clearly(store_root: Path, guest: Guest) -> None:
    guest.os_release('ID=arch\nPRETTY_NAME="Arch Linux"\n')
    store, cfg, driver = _machine(store_root, guest)
    with pytest.raises(MachineError, match="Arch Linux"):
        _provision(store, cfg, driver)
    assert guest.log() == []


def test_after_start_reissues_for_a_new_address(store_root: Path, guest: Guest) -> None:
    guest.os_release(DEBIAN)
    store, cfg, driver = _machine(store_root, guest)
    _check_shims_are_used(guest, store, cfg, driver)
    _provision(store, cfg, driver)
    assert guest.starts == 1
    moved = MovedGeneric(driver.ctx)
    assert "does not cover 127.0.0.2" in (check_certs(store, cfg, moved) or "")
    out = io.StringIO()
    after_start(store, cfg, moved, Progress(stream=out))
    assert "server certificate was re-issued" in out.getvalue()
    ips, _ = certs.server_cert_sans(guest.root / "etc/docker/server.pem")
    assert "127.0.0.2" in ips and "127.0.0.1" in ips
    assert check_certs(store, cfg, moved) is None
    assert guest.log()[-1].startswith("systemctl restart docker.service")
    # nothing changed: nothing is done
    before = len(guest.log())
    after_start(store, cfg, moved, Progress(stream=io.StringIO()))
    assert len(guest.log()) == before


def test_upgrade_on_debian(store_root: Path, guest: Guest) -> None:
    from machine.provision.run import upgrade

    guest.os_release(DEBIAN)
    store, cfg, driver = _machine(store_root, guest)
    _check_shims_are_used(guest, store, cfg, driver)
    _provision(store, cfg, driver)
    out = io.StringIO()
    upgrade(store, cfg, driver, Progress(stream=out))
    assert "Upgrading the Docker engine (debian)... done" in out.getvalue()
    assert any("install -y -q --only-upgrade docker.io" in x for x in guest.log())
    assert guest.log()[-1].startswith("systemctl restart docker.service")
    waiting.until(lambda: guest.starts == 2, timeout=5, what="the engine restart")


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
