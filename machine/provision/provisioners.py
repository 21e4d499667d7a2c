"""Per-OS engine provisioners: install the engine when missing, write its configuration (daemon.json,
TLS files, service overrides) and (re)start it.

- machine-os: the engine is part of the OS and reads /etc/docker; the seed normally configured it.
  Missing files are uploaded and the marker /etc/docker/machine-ready written last.
- debian/ubuntu, fedora/rhel: systemd; a drop-in replaces ExecStart without `-H fd://`;
  docker.socket is masked (runtime) and stopped while the configuration changes.
- alpine: OpenRC; environment in a managed block of /etc/conf.d/docker.
"""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path
from typing import ClassVar

from machine import machinedir
from machine.errors import ProvisionError, Unsupported
from machine.provision import engineconfig
from machine.provision.remote import Remote
from machine.store import MachineConfig, Store

DROPIN = "/etc/systemd/system/docker.service.d/10-machine.conf"
MARKER = "/etc/docker/machine-ready"
ENGINE_ENV = "/etc/docker/engine.env"
OPENRC_CONF = "/etc/conf.d/docker"
POLICY_RC_D = "/usr/sbin/policy-rc.d"
_ARGV = re.compile(r"argv\[\]=(.*?) ;")
_BLOCK = re.compile(r"# BEGIN machine.*?# END machine\n?", re.S)


def packaged_exec_start(show_output: str) -> str:
    """The command line from `systemctl show -p ExecStart --value docker.service` (its argv[] field)."""
    m = _ARGV.search(show_output)
    return m.group(1).strip() if m else ""


def replace_block(text: str, block: str) -> str:
    """`text` with machine's managed block replaced by `block` (appended when absent)."""
    if _BLOCK.search(text):
        return _BLOCK.sub(lambda _: block, text, count=1)
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block


class Provisioner:
    family: ClassVar[str] = ""
    packages: ClassVar[str] = ""

    def __init__(self, remote: Remote, store: Store, cfg: MachineConfig) -> None:
        self.remote = remote
        self.store = store
        self.cfg = cfg
        self.mdir = store.machine_dir(cfg.name)
        self.warnings: list[str] = []  # told to the user after provisioning

    # -- what every OS writes ---------------------------------------------------------------
    @property
    def tls(self) -> bool:
        return self.cfg.engine.get("transport", "tls") == "tls"

    def daemon_json(self) -> str:
        return engineconfig.render_daemon_json(engineconfig.daemon_config(self.cfg.engine, self.cfg.driver))

    def env(self) -> dict[str, str]:
        return engineconfig.engine_env(self.cfg.engine)

    def put_tls_files(self) -> None:
        if not self.tls:
            return
        files = engineconfig.TLSFiles()
        self.remote.run(f"mkdir -p {self.remote.q('/etc/docker')}")
        self.remote.put(files.ca, (self.mdir / machinedir.CA_CERT).read_bytes(), 0o644)
        self.remote.put(files.cert, (self.mdir / machinedir.SERVER_CERT).read_bytes(), 0o644)
        self.remote.put(files.key, (self.mdir / machinedir.SERVER_KEY).read_bytes(), 0o600)

    def put_daemon_json(self) -> None:
        """Write daemon.json; a host's own daemon.json (not written by machine) is kept once as
        daemon.json.before-machine."""
        path, backup = self.remote.q("/etc/docker/daemon.json"), self.remote.q("/etc/docker/daemon.json.before-machine")
        self.remote.run(f"if [ -e {path} ] && [ ! -e {backup} ] && ! grep -qs '\"provider=' {path}; then "
                        f"cp -p {path} {backup}; fi", what="Keeping the host's daemon.json")
        self.remote.put("/etc/docker/daemon.json", self.daemon_json(), 0o644)

    # -- steps ------------------------------------------------------------------------------
    def engine_installed(self) -> bool:
        return self.remote.which("dockerd") is not None

    def install(self) -> str:
        """Install the engine; returns how ('packages', 'script', 'archive', 'bundle')."""
        engine = self.cfg.engine
        if engine.get("archive"):
            return self.install_local(str(engine["archive"]))
        if engine.get("install_url"):
            self.install_script(engine["install_url"])
            return "script"
        if engine.get("version"):
            self.install_archive(str(engine["version"]))
            return "archive"
        self.install_packages()
        return "packages"

    def install_packages(self) -> None:
        raise NotImplementedError

    def install_script(self, url: str) -> None:
        q, script = shlex.quote(url), self.remote.q("/tmp/install-docker.sh")
        self.remote.run(f"mkdir -p {self.remote.q('/tmp')} && (command -v curl >/dev/null && curl -fsSL {q} -o "
                        f"{script} || wget -qO {script} {q}) && sh {script}; rc=$?; rm -f {script}; exit $rc",
                        what=f"Engine install script {url}", timeout=1800)

    def arch(self) -> str:
        return self.remote.run("uname -m", what="uname").stdout.strip() or "x86_64"

    def install_archive(self, version: str) -> None:
        from machine.provision.archive import engine_archive

        self.install_static(engine_archive(self.store.cache_dir, version, self.arch()))

    def install_static(self, archive: Path) -> None:
        """Docker's static archive: its docker/* members to /usr/local/bin, plus a service definition."""
        tgz, bindir = self.remote.q("/tmp/docker-engine.tgz"), self.remote.q("/usr/local/bin")
        self.remote.put("/tmp/docker-engine.tgz", archive.read_bytes(), 0o600)
        self.remote.run(f"mkdir -p {bindir} && tar -xzf {tgz} -C {bindir} --strip-components=1; rc=$?; rm -f {tgz}; "
                        "exit $rc", what="Unpacking the engine archive")
        self.install_service("/usr/local/bin/dockerd")

    def install_local(self, value: str) -> str:
        """`--engine-archive`: a static archive, or a bundle of packages uploaded to a temporary directory
        and installed by the OS's package tool without network access."""
        from machine.provision import archive as arc

        local = arc.inspect_local(value)
        arc.check_fits(local, self.family, self.arch() if local.kind == "static" else "", self.cfg.name)
        if local.kind == "static":
            self.install_static(local.path)
            return "archive"
        tmp = f"/tmp/machine-engine-{uuid.uuid4().hex[:12]}"
        try:
            for name, data in arc.package_files(local):
                self.remote.put(f"{tmp}/{name}", data, 0o644)
            self.remote.run(arc.offline_install_command(local.package_type, self.remote.q(tmp),
                                                        self.remote.q(POLICY_RC_D)),
                            what=f"Installing the engine packages ({local.package_type}, offline)", timeout=1800)
        finally:
            self.remote.run(f"rm -rf {self.remote.q(tmp)}", check=False, what="Removing the uploaded packages")
        enabled = (self.remote.read("/sys/module/apparmor/parameters/enabled") or "").strip()
        if enabled == "Y" and not self.remote.which("apparmor_parser"):
            self.warnings.append("The kernel enforces AppArmor but apparmor_parser is missing: `docker run` fails "
                                 "until the machine has the apparmor package (add it to the bundle).")
        return "bundle"

    def install_service(self, dockerd: str) -> None:
        raise NotImplementedError

    def configure(self, force: bool = False) -> bool:
        """Write the engine's configuration and (re)start it; True when files were written."""
        raise NotImplementedError

    def restart_engine(self) -> None:
        raise NotImplementedError

    def upgrade(self) -> None:
        raise NotImplementedError


class MachineOS(Provisioner):
    family = "machine-os"

    def files(self) -> list[tuple[str, bytes, int]]:
        from machine.provision.precreate import engine_files

        return [(f.path, f.content if isinstance(f.content, bytes) else f.content.encode(), int(f.permissions, 8))
                for f in engine_files(self.cfg, self.mdir)]

    def configured(self) -> bool:
        return self.remote.ok(" && ".join(f"test -e {self.remote.q(path)}" for path, _, _ in self.files()))

    def install(self) -> str:
        raise ProvisionError(f"Machine {self.cfg.name!r} runs the machine OS but has no Docker engine",
                             "The machine OS image is broken: rebuild it (machine os build --force), recreate it.")

    def configure(self, force: bool = False) -> bool:
        """Nothing when the seed configured everything; else upload the files, the marker last (the
        OS starts the engine when the marker appears)."""
        self.check_env_support()
        if not force and self.configured():
            return False
        for path, data, mode in self.files():
            if path == MARKER and self.remote.exists(MARKER):
                continue
            self.remote.put(path, data, mode)
        return True

    def check_env_support(self) -> None:
        """--engine-env lands in /etc/docker/engine.env; say so when this OS build does not read it."""
        if self.env() and not self.remote.ok(f"grep -qs engine.env {self.remote.q('/etc/machine-os/engine.run')}"):
            self.warnings.append(f"This machine OS build does not read {ENGINE_ENV}: the --engine-env values are "
                                 "written there but the engine does not see them yet.")

    def restart_engine(self) -> None:
        """The OS's init respawns the engine supervisor (/etc/machine-os/engine.run) when dockerd exits:
        stop dockerd (its pid file names it) and wait until a new dockerd has written its pid file."""
        pidfile = self.remote.q("/var/run/docker.pid")
        find = "pidof dockerd" if self.remote.root in ("", "/") else "true"
        self.remote.run(
            f"p={pidfile}; old=$(cat $p 2>/dev/null || {find}); [ -n \"$old\" ] || exit 0; kill $old; "
            "i=0; while kill -0 $old 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; "
            "kill -0 $old 2>/dev/null && kill -9 $old; i=0; "
            "until new=$(cat $p 2>/dev/null) && [ -n \"$new\" ] && [ \"$new\" != \"$old\" ] && kill -0 $new; do "
            "[ $i -ge 300 ] && { echo 'the engine did not come back' >&2; exit 1; }; sleep 0.1; i=$((i+1)); done",
            what="Restarting the engine (see /var/log/docker.log)")

    def upgrade(self) -> None:
        raise Unsupported("The machine OS engine is upgraded with the OS image, not in place",
                          "Build a newer machine OS image, then recreate the machine.")


class Systemd(Provisioner):
    """Shared by the systemd distributions."""

    def install_service(self, dockerd: str) -> None:
        self.remote.put("/etc/systemd/system/docker.service", engineconfig.systemd_unit(dockerd), 0o644)
        self.remote.run("systemctl daemon-reload", what="systemctl daemon-reload")

    def configure(self, force: bool = False) -> bool:
        dockerd = self.remote.which("dockerd") or "/usr/bin/dockerd"
        shown = self.remote.run("systemctl show -p ExecStart --value docker.service", check=False).stdout
        exec_line = engineconfig.exec_start(packaged_exec_start(shown), dockerd)
        # stop the engine and keep socket activation from starting it with the old flags meanwhile
        self.remote.run("systemctl mask --runtime docker.socket >/dev/null 2>&1 || true; "
                        "systemctl stop docker.socket docker.service >/dev/null 2>&1 || true",
                        what="Stopping the engine")
        self.remote.run(f"mkdir -p {self.remote.q('/etc/docker')} {self.remote.q(str(Path(DROPIN).parent))}")
        self.put_tls_files()
        self.put_daemon_json()
        self.remote.put(DROPIN, engineconfig.systemd_dropin(exec_line, self.env()), 0o644)
        # one daemon-reload for the unmask, the enable (skipped when the package enabled it: on Debian it
        # also runs systemd-sysv-install, seconds under TCG) and the drop-in
        self.remote.run("systemctl unmask --no-reload --runtime docker.socket >/dev/null 2>&1 || true; "
                        "systemctl is-enabled -q docker.service || systemctl enable --no-reload docker.service "
                        ">/dev/null 2>&1; systemctl daemon-reload && systemctl restart docker.service",
                        what="Starting the engine (see: journalctl -u docker)")
        return True

    def restart_engine(self) -> None:
        self.remote.run("systemctl restart docker.service", what="Restarting the engine")


class Debian(Systemd):
    family = "debian"
    packages = "docker.io apparmor"

    def install_packages(self) -> None:
        self.remote.run("export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=300 update -q && "
                        f"apt-get -o DPkg::Lock::Timeout=300 install -y -q {self.packages}",
                        what="Installing the engine (apt-get)", timeout=1800)

    def upgrade(self) -> None:
        self.remote.run("export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=300 update -q && "
                        "apt-get -o DPkg::Lock::Timeout=300 install -y -q --only-upgrade docker.io docker-ce",
                        what="Upgrading the engine (apt-get)", timeout=1800, check=False)
        self.restart_engine()


class Ubuntu(Debian):
    family = "ubuntu"
    packages = "docker.io"


class Fedora(Systemd):
    family = "fedora"

    def install_packages(self) -> None:
        self.remote.run("dnf install -y moby-engine", what="Installing the engine (dnf)", timeout=1800)

    def upgrade(self) -> None:
        self.remote.run("dnf upgrade -y moby-engine docker-ce", what="Upgrading the engine (dnf)", timeout=1800,
                        check=False)
        self.restart_engine()


class RHEL(Fedora):
    family = "rhel"

    def install_packages(self) -> None:
        self.remote.run("dnf install -y dnf-plugins-core && dnf config-manager --add-repo "
                        "https://download.docker.com/linux/centos/docker-ce.repo && "
                        "dnf install -y docker-ce docker-ce-cli containerd.io",
                        what="Installing the engine (dnf, docker-ce repository)", timeout=1800)


class Alpine(Provisioner):
    family = "alpine"

    def install_packages(self) -> None:
        self.remote.run("apk add --no-cache docker", what="Installing the engine (apk)", timeout=1800)

    def install_service(self, dockerd: str) -> None:
        self.remote.put("/etc/init.d/docker", engineconfig.openrc_init(dockerd), 0o755)

    def configure(self, force: bool = False) -> bool:
        self.remote.run(f"mkdir -p {self.remote.q('/etc/docker')} {self.remote.q('/etc/conf.d')}")
        self.put_tls_files()
        self.put_daemon_json()
        current = self.remote.read(OPENRC_CONF) or ""
        self.remote.put(OPENRC_CONF, replace_block(current, engineconfig.openrc_conf(self.env())), 0o644)
        self.remote.run("rc-update add docker default >/dev/null 2>&1 || true; rc-service docker restart || "
                        "rc-service docker start", what="Starting the engine (see /var/log/docker.log)")
        return True

    def restart_engine(self) -> None:
        self.remote.run("rc-service docker restart", what="Restarting the engine")

    def upgrade(self) -> None:
        self.remote.run("apk upgrade --no-cache docker", what="Upgrading the engine (apk)", timeout=1800)
        self.restart_engine()


PROVISIONERS: dict[str, type[Provisioner]] = {
    p.family: p for p in (MachineOS, Debian, Ubuntu, Fedora, RHEL, Alpine)
}
