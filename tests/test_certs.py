"""TLS material: the CA, client and server certificates parsed back, their SANs, usages and
validity, and that the chain verifies (cryptography's verifier, openssl, and a real TLS handshake)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from machine.errors import ConfigError
from machine.provision import certs


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    certs_dir = tmp_path / "certs"
    paths = certs.ensure_ca(certs_dir)
    server, server_key = tmp_path / "m1" / "server.pem", tmp_path / "m1" / "server-key.pem"
    server.parent.mkdir()
    certs.issue_server_cert(certs_dir, server, server_key, name="m1",
                            ips=["127.0.0.1", "10.0.2.15", "::1", "127.0.0.1"], dns=["localhost", "m1", "m1.local"])
    return {"dir": certs_dir, "ca": paths.ca, "ca_key": paths.ca_key, "cert": paths.cert, "key": paths.key,
            "server": server, "server_key": server_key}


def test_ca_certificate(pki: dict[str, Path]) -> None:
    ca = load(pki["ca"])
    bc = ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True
    ku = ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert ca.subject == ca.issuer  # self-signed
    ca.verify_directly_issued_by(ca)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    ext(ca, x509.SubjectKeyIdentifier)
    key = serialization.load_pem_private_key(pki["ca_key"].read_bytes(), password=None)
    assert key.public_key().public_numbers() == ca.public_key().public_numbers()  # type: ignore[union-attr]


def test_server_certificate_sans_and_usages(pki: dict[str, Path]) -> None:
    ca, server = load(pki["ca"]), load(pki["server"])
    server.verify_directly_issued_by(ca)
    san = ext(server, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                        ipaddress.ip_address("10.0.2.15"), ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "m1", "m1.local"]
    assert ext(server, x509.BasicConstraints).value.ca is False
    assert list(ext(server, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ku = ext(server, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    assert ext(server, x509.AuthorityKeyIdentifier).value.key_identifier == \
        ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert certs.server_cert_sans(pki["server"]) == (["127.0.0.1", "10.0.2.15", "::1"], ["localhost", "m1", "m1.local"])
    key = serialization.load_pem_private_key(pki["server_key"].read_bytes(), password=None)
    assert key.public_key().public_numbers() == server.public_key().public_numbers()  # type: ignore[union-attr]


def test_client_certificate(pki: dict[str, Path]) -> None:
    ca, client = load(pki["ca"]), load(pki["cert"])
    client.verify_directly_issued_by(ca)
    assert list(ext(client, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ext(client, x509.BasicConstraints).value.ca is False
    assert not ext(client, x509.KeyUsage).value.key_cert_sign


def test_serials_are_random_and_distinct(pki: dict[str, Path], tmp_path: Path) -> None:
    more = []
    for i in range(3):
        out = tmp_path / f"s{i}.pem"
        certs.issue_server_cert(pki["dir"], out, tmp_path / f"s{i}-key.pem", name="m1", ips=["127.0.0.1"], dns=[])
        more.append(out)
    serials = [load(p).serial_number for p in (pki["ca"], pki["cert"], pki["server"], *more)]
    assert len(set(serials)) == len(serials)
    assert all(s > 0 and s.bit_length() > 64 for s in serials), "serials must be large random numbers"


def test_validity_periods(pki: dict[str, Path]) -> None:
    now = dt.datetime.now(dt.UTC)
    for name, days in (("ca", certs.CA_DAYS), ("cert", certs.LEAF_DAYS), ("server", certs.LEAF_DAYS)):
        cert = load(pki[name])
        assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc, name
        assert now - cert.not_valid_before_utc < dt.timedelta(hours=1), f"{name}: backdated too far"
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert abs(lifetime - dt.timedelta(days=days)) < dt.timedelta(hours=1), name
    assert load(pki["server"]).not_valid_after_utc <= load(pki["ca"]).not_valid_after_utc


def test_chain_verifies_with_cryptography(pki: dict[str, Path]) -> None:
    ca, server, client = load(pki["ca"]), load(pki["server"]), load(pki["cert"])
    store = verification.Store([ca])
    for subject in (verification.DNSName("m1"), verification.IPAddress(ipaddress.ip_address("10.0.2.15"))):
        verifier = verification.PolicyBuilder().store(store).build_server_verifier(subject)
        chain = verifier.verify(server, [])
        assert chain[-1] == ca
    with pytest.raises(verification.VerificationError):
        verification.PolicyBuilder().store(store).build_server_verifier(
            verification.DNSName("not-a-san.example")).verify(server, [])
    # Docker's client certificates carry no SAN (as docker-machine's); the Web PKI profile wants one,
    # so let it be absent and keep the other default end-entity checks (EKU clientAuth, ...).
    ee = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)
    client_policy = verification.PolicyBuilder().store(store).extension_policies(
        ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
    verified = client_policy.build_client_verifier().verify(client, [])
    assert verified.chain[-1] == ca
    with pytest.raises(verification.VerificationError):  # a server certificate is no client certificate
        client_policy.build_client_verifier().verify(server, [])
    # the client certificate is no server certificate
    with pytest.raises(verification.VerificationError):
        verification.PolicyBuilder().store(store).build_server_verifier(verification.DNSName("m1")).verify(client, [])


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_chain_verifies_with_openssl(pki: dict[str, Path]) -> None:
    def verify(cert: Path, purpose: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["openssl", "verify", "-CAfile", str(pki["ca"]), "-purpose", purpose, str(cert)],
                              capture_output=True, text=True, timeout=30)

    ok = verify(pki["server"], "sslserver")
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    ok = verify(pki["cert"], "sslclient")
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    wrong = verify(pki["cert"], "sslserver")
    assert wrong.returncode != 0


def test_mutual_tls_handshake_on_loopback(pki: dict[str, Path]) -> None:
    """What dockerd (--tlsverify) and the docker client do: both sides present certs signed by the CA."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki["server"], pki["server_key"])
    server_ctx.load_verify_locations(pki["ca"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    client_ctx.load_cert_chain(pki["cert"], pki["key"])

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
                tls.sendall(b"ok")
        except ssl.SSLError as e:
            seen["error"] = e

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.recv(2) == b"ok"
        thread.join(10)
    finally:
        listener.close()
    assert "error" not in seen, seen
    assert dict(x[0] for x in seen["peer"]["subject"])["commonName"] == "client"  # type: ignore[index]


def test_ensure_ca_is_idempotent_and_recovers_the_client_cert(pki: dict[str, Path]) -> None:
    ca_before, cert_before = pki["ca"].read_bytes(), pki["cert"].read_bytes()
    certs.ensure_ca(pki["dir"])
    assert pki["ca"].read_bytes() == ca_before and pki["cert"].read_bytes() == cert_before
    pki["cert"].unlink()
    certs.ensure_ca(pki["dir"])
    assert pki["ca"].read_bytes() == ca_before
    load(pki["cert"]).verify_directly_issued_by(load(pki["ca"]))


def test_copy_client_certs(pki: dict[str, Path], tmp_path: Path) -> None:
    machine_dir = tmp_path / "m2"
    machine_dir.mkdir()
    certs.copy_client_certs(pki["dir"], machine_dir)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert (machine_dir / name).read_bytes() == (pki["dir"] / name).read_bytes()


def test_server_cert_without_sans(pki: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bare.pem"
    certs.issue_server_cert(pki["dir"], out, tmp_path / "bare-key.pem", name="bare", ips=[], dns=[])
    assert certs.server_cert_sans(out) == ([], [])


def test_bad_ip_san_is_a_config_error(pki: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Not an IP address: 'm1.local'"):
        certs.issue_server_cert(pki["dir"], tmp_path / "x.pem", tmp_path / "x-key.pem", name="x",
                                ips=["m1.local"], dns=[])
    assert not (tmp_path / "x.pem").exists()


def test_unreadable_ca_is_a_config_error(pki: dict[str, Path], tmp_path: Path) -> None:
    pki["ca_key"].write_text("garbage")
    with pytest.raises(ConfigError) as info:
        certs.issue_server_cert(pki["dir"], tmp_path / "y.pem", tmp_path / "y-key.pem", name="y", ips=[], dns=[])
    assert str(pki["dir"]) in info.value.message and info.value.hint
