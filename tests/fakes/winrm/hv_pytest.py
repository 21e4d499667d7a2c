"""Helpers for tests that run the hyperv driver against the fake WinRM server: TLS material
(a CA and a server certificate for 127.0.0.1), a running server, and driver contexts."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hv_model import FakeHyperV
from hv_winrm_server import FakeWinRMServer

USER, PASSWORD = "HV01\\builder", "pa'ss w\u00f6rd"


def make_tls(folder: Path, self_signed: bool = False) -> tuple[Path, Path, Path]:
    """(ca.pem, server-cert.pem, server-key.pem): a CA and a leaf for 127.0.0.1/localhost signed by it;
    with self_signed, the leaf signs itself (as New-SelfSignedCertificate makes for WinRM listeners)
    and ca.pem is that same certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake WinRM test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    if self_signed:
        ca_key, ca_name = key, leaf_name
    leaf = (x509.CertificateBuilder()
            .subject_name(leaf_name)
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "server-cert.pem", folder / "server-key.pem"
    ca_pem.write_bytes((leaf if self_signed else ca).public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return ca_pem, cert_pem, key_pem


@contextlib.contextmanager
def fake_host(tmp_path: Path, *, tls: bool = False, ntlm: bool = False,
              self_signed: bool = False) -> Iterator[FakeWinRMServer]:
    state = tmp_path / "hyperv-host"
    kwargs: dict[str, Any] = {"user": USER, "password": PASSWORD}
    if tls:
        _ca, cert, key = make_tls(tmp_path / "tls", self_signed=self_signed)
        kwargs["tls"] = (cert, key)
    if ntlm:
        domain, user = USER.split("\\")
        users = tmp_path / "ntlm-users"
        users.write_text(f"{domain}:{user}:{PASSWORD}\n")
        kwargs["ntlm_user_file"] = users
    with FakeWinRMServer(FakeHyperV(state), **kwargs) as srv:
        yield srv


def options_for(server: FakeWinRMServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """Driver options (as option_values would give them) pointing at the fake server."""
    from machine.drivers.hyperv import HypervDriver

    from machine.driver import option_values

    given: dict[str, Any] = {"host": "127.0.0.1", "port": server.port, "user": USER, "password": PASSWORD,
                             "transport": "basic", "scheme": server.scheme}
    if server.scheme == "https":
        given["ca_file"] = str(tmp_path / "tls" / "ca.pem")
    given.update(extra)
    return option_values(HypervDriver, given, environ={})


def context(tmp_path: Path, options: dict[str, Any], name: str = "hv1", seed: bytes | None = None) -> Any:
    from machine.driver import DriverContext

    machine_dir = tmp_path / "machines" / name
    machine_dir.mkdir(parents=True, exist_ok=True)
    seed_path = machine_dir / "seed.iso"
    seed_path.write_bytes(seed if seed is not None else b"CD001-seed" + bytes(range(256)) * 40)
    return DriverContext(name=name, machine_dir=machine_dir, options=options, data={}, cache_dir=tmp_path / "cache",
                         seed_path=seed_path)


def fake_iso(tmp_path: Path, size: int = 50_000) -> Path:
    """A small 'ISO': deterministic bytes of `size` (not a multiple of a chunk)."""
    import hashlib

    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(n.to_bytes(8, "big")).digest()
        n += 1
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "machine-os.iso"
    path.write_bytes(bytes(out[:size]))
    return path
