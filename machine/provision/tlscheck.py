"""Talk to the engine the way the docker client does: TLS with the client certificate, verifying the
server certificate against the machine's CA and address (standard library only; ssl and http.client are imported
when a connection is made: env and config only need split_url)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from machine import machinedir
from machine.errors import TimeoutError_

if TYPE_CHECKING:
    import ssl


def context(cert_dir: Path) -> ssl.SSLContext:
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert_dir / machinedir.CA_CERT))
    ctx.load_cert_chain(str(cert_dir / machinedir.CLIENT_CERT), str(cert_dir / machinedir.CLIENT_KEY))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def get_version(host: str, port: int, cert_dir: Path, timeout: float = 10.0) -> dict[str, Any]:
    """GET /version over TLS; raises OSError / ssl.SSLError / ValueError on failure."""
    import http.client  # here, not at the top: env/config only need split_url

    conn = http.client.HTTPSConnection(host, port, context=context(cert_dir), timeout=timeout)
    try:
        conn.request("GET", "/version", headers={"Host": "docker"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status} from the engine")
        return json.loads(body)
    finally:
        conn.close()


def wait_version(host: str, port: int, cert_dir: Path, timeout: float = 120.0) -> dict[str, Any]:
    """Poll until the engine answers over TLS. A certificate verification failure is not retried."""
    import ssl

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            # a slow handshake is not a failure: under TCG on a busy host the guest's first TLS handshake took
            # longer than 10 s (refused or reset connections still return at once)
            return get_version(host, port, cert_dir, timeout=min(30.0, max(1.0, deadline - time.monotonic())))
        except ssl.SSLCertVerificationError as e:
            raise TimeoutError_(f"The engine at {host}:{port} presents a certificate that does not verify: "
                                f"{e.verify_message}", "Run: machine regenerate-certs NAME") from None
        except (OSError, ValueError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError_(f"The Docker engine at {host}:{port} did not answer over TLS within "
                                f"{timeout:.0f} s: {last}", "Look at the engine's log on the machine "
                                "(machine ssh NAME), or run the command again with -D.")
        time.sleep(0.3)


def split_url(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url or "")
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        return None
    return parts.hostname, parts.port


def why_not(error: BaseException, target: tuple[str, int], timeout: float, cert_dir: Path) -> str:
    """Why get_version failed, in words close to docker-machine's ls ERRORS (refused, EOF, timeout, TLS error)."""
    import ssl

    where = f"{target[0]}:{target[1]}"
    if isinstance(error, FileNotFoundError):  # ssl names no file: look which of the client's files is not there
        missing = [n for n in machinedir.CLIENT_TLS_FILES if not (cert_dir / n).is_file()] or [str(error)]
        return f"no client certificate to ask {where} with: {', '.join(missing)} missing in {cert_dir}"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(error, TimeoutError):
        return f"no answer from {where} within {timeout:.1f} s (timeout)"
    if isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, EOFError)):
        return f"EOF from {where} (the connection was closed before an answer)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS error with {where}: certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error with {where}: {error.reason or error}"
    if isinstance(error, OSError):
        return f"{where}: {error.strerror or error}"
    # an answer, but not a Docker engine's version: an HTTP status, not JSON, not HTTP (http.client's errors)
    return f"{where} did not answer as a Docker engine: {type(error).__name__} {error}".rstrip()
