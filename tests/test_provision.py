"""Provisioning without a machine: prepare (keys, pin, certificates, seed), OS detection, certificate
coverage checks, and the TLS engine check against a local mutual-TLS server (fakes/tlsengine.py)."""

from __future__ import annotations

import io
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pycdlib
import pytest
from cryptography import x509
from fakes.tlsengine import FakeEngine

from machine import registry
from machine.driver import Driver, DriverContext, Features, State
from machine.errors import MachineError, TimeoutError_, UsageError
from machine.provision import certs, check_certs, engine_version_quick, osdetect, tlscheck
from machine.provision.precreate import prepare
from machine.store import MachineConfig, Store


class SeedyDriver(Driver):
    """A driver that boots an image (wants a seed), as qemu does."""

    name = "seedy"
    features = Features(seed=True)

    def create(self) -> None: ...
    def start(self) -> None: ...
    def stop(self, force: bool = False) -> None: ...
    def remove(self) -> None: ...

    def status(self) -> State:
        return State.RUNNING


@pytest.fixture
def seedy(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.get
    monkeypatch.setattr(registry, "get", lambda name: SeedyDriver if name == "seedy" else real(name))


def _ctx(store: Store, cfg: MachineConfig, **kw) -> DriverContext:
    return DriverContext(name=cfg.name, machine_dir=store.make_machine_dir(cfg.name), options=kw.pop("options", {}),
                         data=kw.pop("data", {}), cache_dir=store.cache_dir)


def read_seed(path: Path) -> dict[str, bytes]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    out = {}
    try:
        for child in iso.list_children(rr_path="/"):
            if child.is_dot() or child.is_dotdot():
                continue
            name = child.rock_ridge.name().decode()
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path="/" + name)
            out[name] = buf.getvalue()
    finally:
        iso.close()
    return out


def user_data(seed: Path) -> dict:
    raw = read_seed(seed)["user-data"].decode()
    assert raw.startswith("#cloud-config\n")
    return json.loads(raw.split("\n", 1)[1])


def files_of(ud: dict) -> dict[str, tuple[bytes, str]]:
    import base64

    return {f["path"]: (base64.b64decode(f["content"]), f["permissions"]) for f in ud["write_files"]}


def test_prepare_for_the_machine_os(store_root: Path, seedy: None) -> None:
    store = Store(store_root)
    cfg = MachineConfig(name="dev", driver="seedy", engine={
        "transport": "tls", "port": 2376, "tls_sans": ["dev.example.com", "192.0.2.7"], "labels": ["team=a"],
        "env": ["HTTP_PROXY=http://proxy:3128"]})
    ctx = _ctx(store, cfg)
    prepare(store, cfg, ctx)
    mdir = store.machine_dir("dev")
    assert (mdir / "id_ed25519").stat().st_mode & 0o777 == 0o600
    pub = (mdir / "id_ed25519.pub").read_text().strip()
    assert pub.startswith("ssh-ed25519 ") and cfg.ssh["key"] == "id_ed25519" and cfg.ssh["user"] == "root"
    assert ctx.seed_path == mdir / "seed.iso" and ctx.seed_path.stat().st_mode & 0o777 == 0o600
    ud = user_data(ctx.seed_path)
    assert ud["hostname"] == "dev" and ud["ssh_authorized_keys"] == [pub]
    # the guest's host key is generated here and its public half is the pin
    assert cfg.ssh["host_key"].split() == ud["ssh_keys"]["ed25519_public"].split()[:2]
    assert "OPENSSH PRIVATE KEY" in ud["ssh_keys"]["ed25519_private"]
    paths = [f["path"] for f in ud["write_files"]]
    assert paths == ["/etc/docker/daemon.json", "/etc/docker/ca.pem", "/etc/docker/server.pem",
                     "/etc/docker/server-key.pem", "/etc/docker/engine.env", "/etc/docker/machine-ready"]
    files = files_of(ud)
    assert files["/etc/docker/server-key.pem"][1] == "0600"
    daemon = json.loads(files["/etc/docker/daemon.json"][0])
    assert daemon["hosts"] == ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"] and daemon["tlsverify"] is True
    assert daemon["labels"] == ["team=a", "provider=seedy"]
    assert files["/etc/docker/ca.pem"][0] == (mdir / "ca.pem").read_bytes()
    assert files["/etc/docker/server.pem"][0] == (mdir / "server.pem").read_bytes()
    assert b"HTTP_PROXY=http://proxy:3128" in files["/etc/docker/engine.env"][0]
    # the server certificate: signed by the CA, with every SAN asked for
    ips, dns = certs.server_cert_sans(mdir / "server.pem")
    assert set(ips) == {"127.0.0.1", "192.0.2.7"} and set(dns) == {"localhost", "dev", "dev.example.com"}
    ca = x509.load_pem_x509_certificate((mdir / "ca.pem").read_bytes())
    x509.load_pem_x509_certificate((mdir / "server.pem").read_bytes()).verify_directly_issued_by(ca)
    assert cfg.engine["cert_sans"] == {"ips": ips, "dns": dns}
    for name in ("cert.pem", "key.pem"):
        assert (mdir / name).exists()


def test_prepare_for_a_cloud_image_sets_up_login_only(store_root: Path, seedy: None) -> None:
    store = Store(store_root)
    cfg = MachineConfig(name="deb", driver="seedy", engine={"transport": "tls", "port": 2376})
    ctx = _ctx(store, cfg, data={"ssh_user": "debian", "seed_kind": "nocloud"})
    prepare(store, cfg, ctx)
    ud = user_data(ctx.seed_path)
    assert cfg.ssh["user"] == "debian" and ud["users"][0]["name"] == "debian"
    assert ud["write_files"] == []  # the engine is installed over SSH later
    assert cfg.engine["configured_by_seed"] is False


def test_prepare_ssh_transport_seeds_no_tls_files(store_root: Path, seedy: None) -> None:
    store = Store(store_root)
    cfg = MachineConfig(name="s", driver="seedy", engine={"transport": "ssh", "port": 2376})
    ctx = _ctx(store, cfg)
    prepare(store, cfg, ctx)
    files = files_of(user_data(ctx.seed_path))
    assert list(files) == ["/etc/docker/daemon.json", "/etc/docker/machine-ready"]
    assert json.loads(files["/etc/docker/daemon.json"][0])["hosts"] == ["unix:///var/run/docker.sock"]


def test_prepare_for_an_existing_host_makes_no_seed_and_no_key(store_root: Path) -> None:
    store = Store(store_root)
    cfg = MachineConfig(name="g", driver="generic", engine={"transport": "tls", "port": 2376})
    ctx = _ctx(store, cfg, options={"ip_address": "127.0.0.1", "ssh_user": "admin", "engine_port": 12376})
    prepare(store, cfg, ctx)
    mdir = store.machine_dir("g")
    assert ctx.seed_path is None and not (mdir / "seed.iso").exists() and not (mdir / "id_ed25519").exists()
    assert "host_key" not in cfg.ssh and cfg.ssh["user"] == "admin"
    assert cfg.engine["port"] == 12376 == ctx.engine_port
    assert (mdir / "server.pem").exists()


@pytest.mark.parametrize("engine_port,option,expected", [(2376, 2376, 2376), (3376, 2376, 3376), (2376, 4376, 4376)])
def test_engine_port_from_engine_port_or_driver_option(store_root: Path, engine_port: int, option: int,
                                                       expected: int) -> None:
    store = Store(store_root)
    cfg = MachineConfig(name="p", driver="generic", engine={"transport": "tls", "port": engine_port})
    ctx = _ctx(store, cfg, options={"ip_address": "127.0.0.1", "engine_port": option})
    prepare(store, cfg, ctx)
    assert cfg.engine["port"] == ctx.engine_port == expected


def test_prepare_refuses_bad_engine_options_before_making_anything(store_root: Path, seedy: None) -> None:
    store = Store(store_root)
    cfg = MachineConfig(name="bad", driver="seedy", engine={"transport": "tls", "opts": ["hosts=tcp://0.0.0.0:2375"]})
    ctx = _ctx(store, cfg)
    with pytest.raises(UsageError):
        prepare(store, cfg, ctx)
    assert list(store.machine_dir("bad").iterdir()) == []


# -- OS detection -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,family", [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', "debian"),
    ('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', "ubuntu"),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "ubuntu"),
    ('ID=raspbian\nID_LIKE=debian\n', "debian"),
    ('NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n', "fedora"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "rhel"),
    ('ID="almalinux"\nID_LIKE="rhel centos fedora"\n', "rhel"),
    ('ID="centos"\nID_LIKE="rhel fedora"\n', "rhel"),
    ('ID=alpine\nVERSION_ID=3.20.0\n', "alpine"),
    ('ID=machine-os\n', "machine-os"),
    ('ID=arch\nPRETTY_NAME="Arch Linux"\n', ""),
    ('# comment only\n', ""),
])
def test_os_families(text: str, family: str) -> None:
    assert osdetect.parse_os_release(text).family == family


def test_unsupported_os_is_a_clear_error() -> None:
    info = osdetect.parse_os_release('ID=arch\nPRETTY_NAME="Arch Linux"\n')
    with pytest.raises(MachineError, match="Arch Linux.*cannot provision") as e:
        osdetect.require_supported(info, "m")
    assert "Debian" in e.value.hint and "-d none" in e.value.hint


# -- certificate coverage -----------------------------------------------------------------------

def _issued(store_root: Path, **engine) -> tuple[Store, MachineConfig]:
    store = Store(store_root)
    store.make_machine_dir("c")
    cfg = MachineConfig(name="c", driver="qemu", engine={"transport": "tls", "port": 2376, **engine})
    certs.copy_client_certs(store.certs_dir, store.machine_dir("c"))
    certs.issue_machine_cert(store, cfg)
    return store, cfg


def test_covers_and_check_certs(store_root: Path) -> None:
    store, cfg = _issued(store_root, tls_sans=["10.1.2.3", "Box.Example"])
    assert certs.covers(store, cfg, "127.0.0.1") and certs.covers(store, cfg, "10.1.2.3")
    assert certs.covers(store, cfg, "box.example") and certs.covers(store, cfg, "c")
    assert not certs.covers(store, cfg, "10.1.2.4")
    cfg.engine["url"] = "tcp://127.0.0.1:41234"
    assert check_certs(store, cfg) is None
    cfg.engine["url"] = "tcp://10.9.9.9:2376"
    assert "does not cover 10.9.9.9" in (check_certs(store, cfg) or "")
    assert "regenerate-certs c" in (check_certs(store, cfg) or "")
    # without the recorded SANs it reads the certificate itself
    del cfg.engine["cert_sans"]
    assert certs.covers(store, cfg, "10.1.2.3") and not certs.covers(store, cfg, "10.9.9.9")
    cfg.engine["transport"] = "ssh"
    assert check_certs(store, cfg) is None


def test_check_certs_imports_no_ssh_or_crypto(store_root: Path) -> None:
    store, cfg = _issued(store_root)
    cfg.engine["url"] = "tcp://127.0.0.1:1"
    store.save(cfg)
    code = ("import sys; from machine.store import Store; from machine.provision import check_certs;"
            f"s=Store({str(store_root)!r}); print(check_certs(s, s.load('c')));"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paramiko','cryptography')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["None", "[]"]


# -- talking TLS to an engine -------------------------------------------------------------------

def test_tls_check_against_a_mutual_tls_engine(store_root: Path) -> None:
    store, cfg = _issued(store_root)
    mdir = store.machine_dir("c")
    engine = FakeEngine(mdir / "server.pem", mdir / "server-key.pem", mdir / "ca.pem")
    try:
        assert tlscheck.get_version("127.0.0.1", engine.port, mdir)["Version"] == "99.1.0"
        cfg.engine["url"] = f"tcp://127.0.0.1:{engine.port}"
        assert engine_version_quick(store, cfg, timeout=5) == "v99.1.0"
        assert engine.requests == ["/version", "/version"]
        # the engine does not know a client without a certificate from the CA
        plain = ssl.create_default_context(cafile=str(mdir / "ca.pem"))
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection(("127.0.0.1", engine.port), timeout=5) as raw:
                with plain.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"GET /version HTTP/1.0\r\n\r\n")
                    if not tls.recv(100):
                        raise OSError("closed")
    finally:
        engine.close()


def test_tls_check_refuses_a_certificate_for_another_name(store_root: Path) -> None:
    store, cfg = _issued(store_root)
    mdir = store.machine_dir("c")
    other = store_root / "other"
    other.mkdir()
    certs.issue_server_cert(store.certs_dir, other / "s.pem", other / "k.pem", name="x", ips=["192.0.2.1"], dns=[])
    engine = FakeEngine(other / "s.pem", other / "k.pem", mdir / "ca.pem")
    try:
        with pytest.raises(TimeoutError_, match="does not verify"):
            tlscheck.wait_version("127.0.0.1", engine.port, mdir, timeout=5)
    finally:
        engine.close()


def test_quick_version_says_why_nothing_answers(store_root: Path) -> None:
    """ls's DOCKER column: an engine that refuses raises OSError saying so (ERRORS); no URL at all is Unknown."""
    store, cfg = _issued(store_root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg.engine["url"] = f"tcp://127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(OSError, match=f"connection refused by 127.0.0.1:{port}"):
        engine_version_quick(store, cfg, timeout=1)
    cfg.engine["url"] = ""
    assert engine_version_quick(store, cfg, timeout=1) == "Unknown"
    assert time.monotonic() - start < 5
