"""TLS material: a CA and a client certificate made on first use, and each machine's server certificate,
issued for the SANs it needs (127.0.0.1, localhost, its name, --tls-san, the addresses its driver reports).

File names follow docker-machine (and the docker CLI's DOCKER_CERT_PATH): ca.pem, ca-key.pem,
cert.pem, key.pem in `<store>/certs/`; server.pem and server-key.pem per machine.

The SANs issued are recorded in `cfg.engine["cert_sans"]`, so the cheap check (`covers`, which env, config and
ls run) reads no certificate: `cryptography` is imported only inside the functions that make or read one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from machine import machinedir
from machine.atomicfile import ensure_dir, write_atomic
from machine.errors import ConfigError
from machine.filelock import FileLock
from machine.store import MachineConfig, Store

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_DAYS = 3650
LEAF_DAYS = 1095
ORG = "machine"
SERVER_CERT = machinedir.SERVER_CERT
SERVER_KEY = machinedir.SERVER_KEY


@dataclass(frozen=True)
class CertPaths:
    ca: Path
    ca_key: Path
    cert: Path
    key: Path


def cert_paths(certs_dir: Path) -> CertPaths:
    return CertPaths(certs_dir / machinedir.CA_CERT, certs_dir / "ca-key.pem", certs_dir / machinedir.CLIENT_CERT,
                     certs_dir / machinedir.CLIENT_KEY)


def _key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _builder(subject: str, issuer: x509.Name | None, public_key: object, days: int) -> x509.CertificateBuilder:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=days)))


def _load(paths: CertPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    except (ValueError, OSError) as e:
        raise ConfigError(f"CA certificate or key in {paths.ca.parent} cannot be read: {e}",
                          "Move the certs directory away to make a new CA (existing machines then "
                          "need 'machine regenerate-certs --client-certs').") from None
    return ca, key  # type: ignore[return-value]


def ensure_ca(certs_dir: Path) -> CertPaths:
    """Make the CA and the client certificate if they do not exist yet; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ensure_dir(certs_dir)
    paths = cert_paths(certs_dir)
    with FileLock(certs_dir / ".lock", timeout=30, what="The certificate store"):
        if not (paths.ca.exists() and paths.ca_key.exists()):
            key = _key()
            cert = (_builder(f"{ORG} CA", None, key.public_key(), CA_DAYS)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                 content_commitment=False, key_encipherment=False,
                                                 data_encipherment=False, key_agreement=False,
                                                 encipher_only=False, decipher_only=False), critical=True)
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                    .sign(key, hashes.SHA256()))
            write_atomic(paths.ca_key, _key_pem(key))
            write_atomic(paths.ca, _cert_pem(cert), mode=0o644)
            for stale in (paths.cert, paths.key):
                stale.unlink(missing_ok=True)
        if not (paths.cert.exists() and paths.key.exists()):
            _issue(paths, paths.cert, paths.key, "client", client=True)
    return paths


def _issue(paths: CertPaths, cert_out: Path, key_out: Path, cn: str, *, client: bool,
           ips: list[str] = (), dns: list[str] = ()) -> None:  # type: ignore[assignment]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca, ca_key = _load(paths)
    key = _key()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (_builder(cn, ca.subject, key.public_key(), LEAF_DAYS)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                            crl_sign=False, content_commitment=False, data_encipherment=False,
                                            key_agreement=True, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if not client:
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
        sans += [x509.DNSName(d) for d in dict.fromkeys(dns)]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_atomic(key_out, _key_pem(key))
    write_atomic(cert_out, _cert_pem(cert), mode=0o644)


def issue_server_cert(certs_dir: Path, cert_out: Path, key_out: Path, *, name: str,
                      ips: list[str], dns: list[str]) -> None:
    """Issue a server certificate signed by the CA for the given IP and DNS SANs."""
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ConfigError(f"Not an IP address: {ip!r}", "Give DNS names as DNS SANs, not IP SANs.") from None
    _issue(ensure_ca(certs_dir), cert_out, key_out, name, client=False, ips=list(ips), dns=list(dns))


def server_cert_sans(cert_file: Path) -> tuple[list[str], list[str]]:
    """(IP SANs, DNS SANs) of a certificate file; ([], []) if it has none."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ([str(i) for i in ext.get_values_for_type(x509.IPAddress)], ext.get_values_for_type(x509.DNSName))


def copy_client_certs(certs_dir: Path, machine_dir: Path) -> None:
    """Put ca.pem, cert.pem and key.pem into the machine dir, so DOCKER_CERT_PATH can point there."""
    paths = ensure_ca(certs_dir)
    for src, mode in ((paths.ca, 0o644), (paths.cert, 0o644), (paths.key, 0o600)):
        dst = machine_dir / src.name
        write_atomic(dst, src.read_bytes(), mode=mode)


# -- the machine's server certificate: the SANs it needs, and whether it still covers the machine -------


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def wanted_sans(cfg: MachineConfig, extra: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(IP SANs, DNS SANs): 127.0.0.1, localhost, the machine name, every --tls-san, plus `extra`
    (addresses the driver reports after boot), kept in order without duplicates."""
    ips: list[str] = ["127.0.0.1"]
    dns: list[str] = ["localhost", cfg.name]
    for item in [*(cfg.engine.get("tls_sans") or []), *extra]:
        if not item:
            continue
        (ips if is_ip(item) else dns).append(str(item))
    return list(dict.fromkeys(ips)), list(dict.fromkeys(dns))


def recorded_sans(store: Store, cfg: MachineConfig) -> tuple[list[str], list[str]]:
    rec = cfg.engine.get("cert_sans")
    if isinstance(rec, dict):
        return list(rec.get("ips") or []), list(rec.get("dns") or [])
    cert = store.machine_dir(cfg.name) / SERVER_CERT
    if not cert.exists():
        return [], []
    return server_cert_sans(cert)


def covers(store: Store, cfg: MachineConfig, host: str | None) -> bool:
    """Does the issued server certificate name `host`?"""
    if not host:
        return True
    ips, dns = recorded_sans(store, cfg)
    if is_ip(host):
        return str(ipaddress.ip_address(host)) in {str(ipaddress.ip_address(i)) for i in ips if is_ip(i)}
    return host.lower() in {d.lower() for d in dns}


def issue_machine_cert(store: Store, cfg: MachineConfig, extra: Iterable[str] = ()) -> tuple[Path, Path]:
    """Issue (or re-issue) server.pem / server-key.pem in the machine dir for the SANs it needs (`extra`: the
    addresses its driver reports); record the SANs in the config; returns the two paths."""
    ips, dns = wanted_sans(cfg, extra)
    mdir = store.machine_dir(cfg.name)
    cert, key = mdir / SERVER_CERT, mdir / SERVER_KEY
    issue_server_cert(store.certs_dir, cert, key, name=cfg.name, ips=ips, dns=dns)
    cfg.engine["cert_sans"] = {"ips": ips, "dns": dns}
    return cert, key
