"""WinRM connection security: TLS validation on by default, CA file, --hyperv-insecure with a
visible warning, credentials, and the transport options reaching pywinrm (NTLM for real, over
HTTPS, against pyspnego's NTLM acceptor in the fake server)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes" / "winrm"))

from hv_pytest import context, fake_host, fake_iso, options_for  # noqa: E402
from machine.drivers.hyperv import HypervDriver, runner  # noqa: E402

from machine.driver import State, option_values  # noqa: E402
from machine.errors import DriverError, HostNotUsable  # noqa: E402


@pytest.fixture(params=["ca-signed", "self-signed"])
def tls_host(tmp_path: Path, request: pytest.FixtureRequest):
    """WinRM over HTTPS with a certificate from a private CA, or a self-signed one (ca.pem is then
    the certificate itself, as a user would export it from the host)."""
    with fake_host(tmp_path, tls=True, self_signed=request.param == "self-signed") as srv:
        yield srv


def test_untrusted_certificate_is_rejected_by_default(tls_host, tmp_path: Path) -> None:
    opts = options_for(tls_host, tmp_path, ca_file=None)
    assert opts["insecure"] is False
    verdict = HypervDriver.check_available(opts)
    assert not verdict.ok and "not trusted" in verdict.message
    assert "--hyperv-ca-file" in verdict.hint and "--hyperv-insecure" in verdict.hint
    with pytest.raises(HostNotUsable, match="not trusted"):
        HypervDriver(context(tmp_path, opts)).status()
    assert tls_host.state.requests == []  # nothing reached the SOAP layer


def test_ca_file_makes_the_certificate_trusted(tls_host, tmp_path: Path) -> None:
    opts = options_for(tls_host, tmp_path, iso=str(fake_iso(tmp_path)))
    assert opts["ca_file"].endswith("ca.pem")
    assert HypervDriver.check_available(opts).ok
    d = HypervDriver(context(tmp_path, opts))
    d.create()
    d.start()
    assert d.status() == State.RUNNING
    d.remove()


def test_insecure_skips_validation_and_warns(tls_host, tmp_path: Path, capsys, monkeypatch) -> None:
    import machine.drivers.hyperv as hv

    monkeypatch.setattr(hv, "_warned_insecure", set())  # the warning is given once per process and host
    opts = options_for(tls_host, tmp_path, ca_file=None, insecure=True)
    assert HypervDriver.check_available(opts).ok
    assert "validation for WinRM at 127.0.0.1 is OFF" in capsys.readouterr().err


def test_wrong_password_is_a_clear_error(tls_host, tmp_path: Path) -> None:
    verdict = HypervDriver.check_available(options_for(tls_host, tmp_path, password="wrong"))
    assert not verdict.ok and "rejected the credentials" in verdict.message and "HYPERV_PASSWORD" in verdict.hint


def test_nothing_listening_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    opts = option_values(HypervDriver, {"host": "127.0.0.1", "port": port, "user": "u", "password": "p"}, environ={})
    verdict = HypervDriver.check_available(opts)
    assert not verdict.ok and "Cannot reach WinRM" in verdict.message and "5986" in verdict.hint


@pytest.mark.parametrize("tls", [True, False], ids=["https", "http-encrypted"])
def test_ntlm(tmp_path: Path, tls: bool) -> None:
    """NTLM (the default transport) against pyspnego's acceptor; over HTTP pywinrm seals every
    message with the NTLM session keys (multipart/encrypted) and the fake unseals them."""
    with fake_host(tmp_path, ntlm=True, tls=tls) as srv:
        opts = options_for(srv, tmp_path, transport="ntlm", iso=str(fake_iso(tmp_path)))
        assert opts["transport"] == HypervDriver.options[4].default == "ntlm"
        assert HypervDriver.check_available(opts).ok
        d = HypervDriver(context(tmp_path, opts))
        d.create()  # includes a streamed seed upload (WinRM Send) and an ISO upload
        d.start()
        assert d.status() == State.RUNNING
        d.remove()
        assert "ntlm" in srv.state.auth_seen and "basic" not in srv.state.auth_seen
        assert not HypervDriver.check_available(dict(opts, password="wrong")).ok


def test_ntlm_over_http_refuses_unsealed_messages(tmp_path: Path) -> None:
    with fake_host(tmp_path, ntlm=True) as srv:
        opts = options_for(srv, tmp_path, transport="ntlm")
        r = HypervDriver.make_runner(opts)
        proto = r.protocol()
        proto.transport.message_encryption = "never"  # what AllowUnencrypted=false rejects
        with pytest.raises(DriverError, match="answered HTTP 400"):
            r.call("check")
        assert srv.state.requests == []


@pytest.mark.parametrize(("transport", "port", "scheme", "endpoint", "pywinrm"), [
    ("ntlm", 5986, "auto", "https://hv.example:5986/wsman", "ntlm"),
    ("kerberos", 5985, "auto", "http://hv.example:5985/wsman", "kerberos"),
    ("credssp", 5986, "auto", "https://hv.example:5986/wsman", "credssp"),
    ("basic", 5985, "auto", "http://hv.example:5985/wsman", "basic"),
    ("ssl", 443, "https", "https://hv.example:443/wsman", "ssl"),
])
def test_transport_options_reach_pywinrm(transport, port, scheme, endpoint, pywinrm, monkeypatch) -> None:
    seen: dict = {}

    class FakeProtocol:
        def __init__(self, url, **kwargs) -> None:
            seen.update(kwargs, url=url)

    import winrm.protocol

    monkeypatch.setattr(winrm.protocol, "Protocol", FakeProtocol)
    opts = option_values(HypervDriver, {"host": "hv.example", "user": "D\\u", "password": "p", "port": port,
                                        "transport": transport, "scheme": scheme, "ca_file": "/etc/ca.pem"},
                         environ={})
    r = HypervDriver.make_runner(opts)
    r.protocol()
    assert seen["url"] == endpoint and seen["transport"] == pywinrm
    assert seen["server_cert_validation"] == "validate" and seen["ca_trust_path"] == "/etc/ca.pem"
    assert seen["username"] == "D\\u" and seen["password"] == "p"


def test_missing_transport_library_says_what_to_install(monkeypatch) -> None:
    opts = option_values(HypervDriver, {"host": "hv.example", "user": "u", "password": "p",
                                        "transport": "kerberos"}, environ={})
    r = HypervDriver.make_runner(opts)
    import winrm.transport

    monkeypatch.setattr(winrm.transport, "HAVE_KERBEROS", False)
    with pytest.raises(HostNotUsable) as info:
        r.run_line("powershell.exe -NoProfile -NonInteractive -EncodedCommand AA==")
    assert "pywinrm[kerberos]" in info.value.hint
    assert runner.EXTRAS["kerberos"] == "pywinrm[kerberos]"


def test_password_stays_out_of_debug_logs(tmp_path: Path, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    with fake_host(tmp_path) as srv:
        opts = options_for(srv, tmp_path, iso=str(fake_iso(tmp_path)))
        d = HypervDriver(context(tmp_path, opts))
        d.create()
        d.start()
        d.remove()
    assert "hyperv create-vm" in caplog.text  # the scripts' results are logged...
    assert opts["password"] not in caplog.text  # ...the password is not
