"""Checking a Docker engine URL given by the user (`--url` of the none driver): tcp://HOST:PORT,
ssh://[USER@]HOST[:PORT], unix:///PATH or npipe:////./pipe/NAME. A bad URL is a UsageError naming what
is wrong, at create, so nothing later (env, version, ls, the docker client) meets it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from machine.errors import UsageError

SCHEMES = ("tcp", "ssh", "unix", "npipe")
MAX_URL = 2048
MAX_HOST = 253  # DNS name limit
LABEL_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
USER_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$")
EXAMPLES = "Use tcp://HOST:PORT (e.g. tcp://10.0.0.5:2376), ssh://USER@HOST[:PORT] or unix:///path/docker.sock."


@dataclass(frozen=True)
class EngineURL:
    scheme: str
    host: str = ""  # without brackets for IPv6
    port: int | None = None
    user: str = ""
    path: str = ""


def _shown(url: str) -> str:
    return repr(url if len(url) <= 80 else url[:77] + "...")


def _bad(url: str, why: str, flag: str) -> UsageError:
    return UsageError(f"Invalid {flag} {_shown(url)}: {why}", EXAMPLES)


def check_host(host: str, url: str, flag: str, bracketed: bool) -> str:
    """An IPv6 address (only in brackets), an IPv4 address or a DNS name."""
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise _bad(url, "brackets hold an IPv6 address only", flag) from None
    if not host:
        raise _bad(url, "no host", flag)
    if len(host) > MAX_HOST:
        raise _bad(url, f"the host name is longer than {MAX_HOST} characters", flag)
    if all(part.isdigit() for part in host.split(".")):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _bad(url, f"{host!r} is not an IPv4 address", flag) from None
    if not all(LABEL_RE.match(label) for label in host.rstrip(".").split(".")):
        raise _bad(url, f"{_shown(host)} is not a host name (letters, digits, '-', dots between names of at most "
                        "63 characters)", flag)
    return host


def parse(url: str, flag: str = "--url") -> EngineURL:
    """`url` checked; raises UsageError saying what is wrong."""
    if not isinstance(url, str) or not url:
        raise UsageError(f"{flag} is empty", EXAMPLES)
    if len(url) > MAX_URL:
        raise _bad(url, f"longer than {MAX_URL} characters", flag)
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise _bad(url, "it contains spaces or control characters", flag)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise _bad(url, f"the scheme must be one of {', '.join(SCHEMES)}", flag)
    scheme = scheme.lower()
    if scheme in ("unix", "npipe"):
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
            raise _bad(url, f"{scheme}:// takes an absolute path and nothing else", flag)
        return EngineURL(scheme, path=parts.path)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:  # bad brackets, a port that is not a number in 0-65535
        raise _bad(url, str(e) if "port" not in str(e).lower() else "the port must be a number from 1 to 65535",
                   flag) from None
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise _bad(url, f"{scheme}:// takes HOST:PORT and no path, query or fragment", flag)
    netloc = parts.netloc
    user = ""
    if "@" in netloc:
        if scheme != "ssh":
            raise _bad(url, "only ssh:// URLs take a user", flag)
        user, _, netloc = netloc.rpartition("@")
        if not USER_RE.match(user):
            raise _bad(url, f"{user!r} is not a user name", flag)
    hostport = netloc
    bracketed = hostport.startswith("[")
    if bracketed:
        host = hostport[1:hostport.index("]")] if "]" in hostport else ""
    else:
        host = hostport.rsplit(":", 1)[0] if ":" in hostport else hostport
    if hostport.endswith(":") or (port is None and ":" in hostport.rsplit("]", 1)[-1]):
        raise _bad(url, "the port is empty", flag)
    if port == 0:
        raise _bad(url, "the port must be a number from 1 to 65535", flag)
    host = check_host(host, url, flag, bracketed)
    if scheme == "tcp" and port is None:
        raise _bad(url, "tcp:// needs a port (the engine's TLS port is usually 2376)", flag)
    return EngineURL(scheme, host=host, port=port, user=user)


class EngineURLOption(str):
    """An option type: the text of a checked engine URL (refused with the reason before anything is made)."""

    description = "an engine URL: tcp://HOST:PORT, ssh://USER@HOST[:PORT] or unix:///PATH"

    def __new__(cls, raw: object) -> EngineURLOption:
        text = str(raw)
        parse(text)
        return super().__new__(cls, text)
