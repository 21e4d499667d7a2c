"""A docker-machine store as docker-machine 0.16 leaves it, written by the tests from the documented format
(libmachine/host.Host with ConfigVersion 3, libmachine/persist/filestore.go, libmachine/auth, engine and
swarm options, each driver's struct): RSA certificates made here (certs/ca.pem, ca-key.pem, cert.pem,
key.pem; per machine server.pem, server-key.pem and copies of ca.pem, cert.pem, key.pem), an id_rsa per
machine, and config.json indented with four spaces as Go's json.MarshalIndent writes it.

Also a fake engine: mutual TLS on 127.0.0.1 with a server certificate from that CA, answering /version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import itertools
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fakes.tlsengine import FakeEngine

ORG = "docker-user"  # docker-machine puts the user name in O=


_KEYS: list[rsa.RSAPrivateKey] = []
_next = itertools.count()


def _rsa() -> rsa.RSAPrivateKey:
    """An RSA 2048 key as docker-machine makes them; a few per test run are reused (each takes ~0.2 s here)."""
    i = next(_next) % 6
    if i == len(_KEYS):
        _KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEYS[i]


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:  # "RSA PRIVATE KEY", as Go's x509.MarshalPKCS1PrivateKey
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _cert(subject: str, key: rsa.RSAPrivateKey, issuer: x509.Certificate | None, issuer_key: rsa.RSAPrivateKey,
          *, ca: bool = False, client: bool = False, ips: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> bytes:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1080))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ips or dns:
        sans = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.DNSName(d) for d in dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class DockerMachineStore:
    """`root` laid out as docker-machine's store (~/.docker/machine)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.certs = root / "certs"
        self.machines = root / "machines"
        self.certs.mkdir(parents=True)
        self.machines.mkdir()
        self.ca_key = _rsa()
        ca_pem = _cert(ORG, self.ca_key, None, self.ca_key, ca=True)
        self.ca = x509.load_pem_x509_certificate(ca_pem)
        client_key = _rsa()
        (self.certs / "ca.pem").write_bytes(ca_pem)
        (self.certs / "ca-key.pem").write_bytes(_key_pem(self.ca_key))
        # docker-machine gives the client certificate the CA's O= too; OpenSSL (our fake engine) would take such a
        # leaf for self-signed and refuse it, so its O= differs here (dockerd, in Go, accepts both)
        (self.certs / "cert.pem").write_bytes(_cert(f"{ORG}.client", client_key, self.ca, self.ca_key, client=True))
        (self.certs / "key.pem").write_bytes(_key_pem(client_key))
        for f in self.certs.iterdir():
            f.chmod(0o600 if "key" in f.name else 0o644)

    def server_cert(self, out_dir: Path, ips: tuple[str, ...], dns: tuple[str, ...] = ("localhost",)) -> None:
        key = _rsa()
        (out_dir / "server.pem").write_bytes(_cert(f"{ORG}.machine", key, self.ca, self.ca_key, ips=ips, dns=dns))
        (out_dir / "server-key.pem").write_bytes(_key_pem(key))

    def auth_options(self, name: str) -> dict[str, Any]:
        mdir, certs = self.machines / name, self.certs
        return {"CertDir": str(certs), "CaCertPath": str(certs / "ca.pem"),
                "CaPrivateKeyPath": str(certs / "ca-key.pem"), "CaCertRemotePath": "",
                "ServerCertPath": str(mdir / "server.pem"),
                "ServerKeyPath": str(mdir / "server-key.pem"), "ClientKeyPath": str(certs / "key.pem"),
                "ServerCertRemotePath": "", "ServerKeyRemotePath": "", "ClientCertPath": str(certs / "cert.pem"),
                "ServerCertSANs": [], "StorePath": str(mdir)}

    def add(self, name: str, driver_name: str, driver: dict[str, Any], *, ip: str = "", ssh_user: str = "docker",
            ssh_port: int = 22, labels: tuple[str, ...] = (), ssh_key: bytes | None = None) -> Path:
        """Write machines/NAME as docker-machine's create leaves it; returns the machine dir."""
        mdir = self.machines / name
        mdir.mkdir(mode=0o700)
        base: dict[str, Any] = {"IPAddress": ip, "MachineName": name, "SSHUser": ssh_user, "SSHPort": ssh_port,
                                "SSHKeyPath": str(mdir / "id_rsa"), "StorePath": str(self.root), "SwarmMaster": False,
                                "SwarmHost": "tcp://0.0.0.0:3376", "SwarmDiscovery": ""}
        if driver_name == "none":  # none keeps no SSH fields and gets no key or certificates
            base.update({"SSHUser": "", "SSHPort": 0, "SSHKeyPath": ""})
        else:
            if ssh_key is None:  # docker-machine makes an RSA key per machine
                ssh_key = _key_pem(_rsa())
            (mdir / "id_rsa").write_bytes(ssh_key)
            (mdir / "id_rsa").chmod(0o600)
            for f in ("ca.pem", "cert.pem", "key.pem"):
                (mdir / f).write_bytes((self.certs / f).read_bytes())
            self.server_cert(mdir, (ip,) if ip else ())
        record = {
            "ConfigVersion": 3,
            "Driver": {**base, **driver},
            "DriverName": driver_name,
            "HostOptions": {
                "Driver": "", "Memory": 0, "Disk": 0,
                "EngineOptions": {"ArbitraryFlags": [], "Dns": None, "GraphDir": "", "Env": [], "Ipv6": False,
                                  "InsecureRegistry": [], "Labels": list(labels), "LogLevel": "", "StorageDriver": "",
                                  "SelinuxEnabled": False, "TlsVerify": True, "RegistryMirror": [],
                                  "InstallURL": "https://get.docker.com"},
                "SwarmOptions": {"IsSwarm": False, "Address": "", "Discovery": "", "Agent": False, "Master": False,
                                 "Host": "tcp://0.0.0.0:3376", "Image": "swarm:latest", "Strategy": "spread",
                                 "Heartbeat": 0, "Overcommit": 0, "ArbitraryFlags": [], "ArbitraryJoinFlags": [],
                                 "Env": None, "IsExperimental": False},
                "AuthOptions": self.auth_options(name),
            },
            "Name": name,
        }
        (mdir / "config.json").write_text(json.dumps(record, indent=4))
        (mdir / "config.json").chmod(0o600)
        return mdir


OURS = (".lock", ".host_key", ".known_hosts")  # machine's files beside docker-machine's folders: .NAME.lock ...


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path -> sha256 of its content and its mode), and every directory;
    machine's own dot files at the top (lock, SSH host key pin: docker-machine's filestore skips dot entries)
    are left out, and anything else starting with a dot is not."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.parent == root and p.name.startswith(".") and p.name.endswith(OURS):
            continue
        if p.is_dir():
            out[rel + "/"] = oct(p.stat().st_mode)
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
    return out


def serve_engine(dm: DockerMachineStore, work_dir: Path, version: str) -> FakeEngine:
    """A dockerd stand-in on 127.0.0.1: mutual TLS with a server certificate from the docker-machine CA;
    GET /version answers like dockerd. Call .close() when done."""
    work_dir.mkdir(parents=True, exist_ok=True)
    dm.server_cert(work_dir, ("127.0.0.1",))
    return FakeEngine(work_dir / "server.pem", work_dir / "server-key.pem", dm.certs / "ca.pem", version=version,
                      api="1.43")
