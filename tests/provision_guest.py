"""The shim guest of the provisioner tests (see test_provision_remote.py): a local sshd whose sessions run
shims instead of the package and service tools, a fake root, and a machine made for it."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from fakes.tlsengine import FakeEngine
from machine.drivers.generic import DRIVER as Generic
from test_ssh import SSHServer, free_port, start_sshd, stop_sshd

from machine.driver import DriverContext
from machine.progress import Progress
from machine.provision import remote as remote_mod
from machine.provision.precreate import prepare
from machine.provision.run import provision
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
            text = (self.shims / "gen").read_text().strip()
            if not text.isdigit():  # never half-written (the shim renames it into place); be safe anyway
                continue
            gen = int(text)
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
            'gen() { echo $(($(cat $S/gen) + 1)) >$S/gen.new && mv $S/gen.new $S/gen; }\n'
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
