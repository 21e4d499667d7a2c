"""Where Hyper-V scripts run: a remote host over WinRM (pywinrm), or this Windows machine through
powershell.exe (only via machine.process.run). Both run the same encoded command line.

The WinRM runner opens one shell per driver object and reuses it for every script (an ISO upload
runs many), closing it with close(). pywinrm is imported only when a remote host is used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from machine.errors import DriverError, HostNotUsable, MachineError

from . import scripts

log = logging.getLogger("machine.drivers.hyperv")

# pywinrm transport per --hyperv-transport value.
TRANSPORTS = {"ntlm": "ntlm", "kerberos": "kerberos", "credssp": "credssp", "basic": "basic", "ssl": "ssl"}
EXTRAS = {"kerberos": "pywinrm[kerberos]", "credssp": "pywinrm[credssp]", "ntlm": "requests-ntlm"}


class Runner:
    """Runs one rendered script and returns the parsed JSON result."""

    secrets: tuple[str, ...] = ()

    def call(self, op: str, **values: Any) -> Any:
        script = scripts.render(op, **values)
        line = scripts.command_line(script)
        out, err, code = self.run_line(line)
        log.debug("hyperv %s: exit %s stdout=%s stderr=%s", op, code, self.mask(out[-2000:]), self.mask(err[-2000:]))
        return self.parse(op, out, err, code)

    def mask(self, text: str) -> str:
        """`text` with the secrets this runner knows (the WinRM password, a share password) as '***'."""
        from machine.process import mask

        return mask(text, [s for s in self.secrets if s])

    def parse(self, op: str, out: str, err: str, code: int) -> Any:
        """scripts.parse, with secrets masked in the error it may raise."""
        try:
            return scripts.parse(op, out, err, code)
        except MachineError as e:
            e.message, e.hint = self.mask(e.message), self.mask(e.hint or "")
            raise

    def run_line(self, line: str) -> tuple[str, str, int]:
        raise NotImplementedError

    def call_with_input(self, op: str, chunks: Iterable[bytes], **values: Any) -> Any:
        """Run `op` feeding `chunks` to its stdin (only over WinRM: its Send operation)."""
        raise NotImplementedError(f"{type(self).__name__} cannot stream input")

    @property
    def can_stream(self) -> bool:
        return False

    def close(self) -> None:
        """Release connections (no-op for the local runner)."""


class LocalRunner(Runner):
    """powershell.exe on this machine (Windows only)."""

    def run_line(self, line: str) -> tuple[str, str, int]:
        from machine import process

        encoded = line.rsplit(" ", 1)[1]
        system_root = os.environ.get("SystemRoot", "C:\\Windows")
        exe = process.which("powershell.exe", [f"{system_root}\\System32\\WindowsPowerShell\\v1.0"]) \
            or "powershell.exe"
        result = process.run([exe, *scripts.POWERSHELL_ARGS, encoded], timeout=900, what="powershell.exe")
        return result.stdout, result.stderr, result.returncode


@dataclass
class WinRMSettings:
    host: str
    port: int
    scheme: str  # "https" or "http"
    user: str
    password: str
    transport: str = "ntlm"
    verify: bool = True
    ca_file: str | None = None
    read_timeout: int = 120

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/wsman"


class WinRMRunner(Runner):
    """Scripts on a remote Hyper-V host over WinRM (WS-Management shell, cmd resource)."""

    def __init__(self, settings: WinRMSettings) -> None:
        self.settings = settings
        self.secrets = (settings.password,)
        self._protocol: Any = None
        self._shell: str | None = None

    def protocol(self) -> Any:
        if self._protocol is None:
            try:
                from winrm.protocol import Protocol
            except ImportError:
                raise HostNotUsable("pywinrm is not installed", "pip install pywinrm") from None
            s = self.settings
            self._protocol = self._guard(lambda: Protocol(
                s.endpoint, transport=TRANSPORTS[s.transport], username=s.user, password=s.password,
                server_cert_validation="validate" if s.verify else "ignore",
                ca_trust_path=s.ca_file if (s.verify and s.ca_file) else None,
                read_timeout_sec=s.read_timeout, operation_timeout_sec=max(1, s.read_timeout - 10)))
        return self._protocol

    def run_line(self, line: str) -> tuple[str, str, int]:
        proto = self.protocol()

        def once() -> tuple[str, str, int]:
            if self._shell is None:
                self._shell = proto.open_shell(codepage=65001)
            command_id = proto.run_command(self._shell, line)
            out, err, code = proto.get_command_output(self._shell, command_id)
            proto.cleanup_command(self._shell, command_id)
            return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code

        return self._guard(once)

    @property
    def can_stream(self) -> bool:
        return True

    def call_with_input(self, op: str, chunks: Iterable[bytes], **values: Any) -> Any:
        script = scripts.render(op, **values)
        line = scripts.command_line(script)
        proto = self.protocol()

        def once() -> tuple[str, str, int]:
            if self._shell is None:
                self._shell = proto.open_shell(codepage=65001)
            command_id = proto.run_command(self._shell, line, console_mode_stdin=False)
            pending: bytes | None = None
            for chunk in chunks:  # each Send carries one chunk; the last one closes stdin
                if pending is not None:
                    proto.send_command_input(self._shell, command_id, pending, end=False)
                pending = chunk
            proto.send_command_input(self._shell, command_id, pending or b"", end=True)
            out, err, code = proto.get_command_output(self._shell, command_id)
            proto.cleanup_command(self._shell, command_id)
            return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code

        out, err, code = self._guard(once)
        log.debug("hyperv %s (stdin): exit %s stdout=%s stderr=%s", op, code, self.mask(out[-2000:]),
                  self.mask(err[-2000:]))
        return self.parse(op, out, err, code)

    def close(self) -> None:
        if self._protocol is not None and self._shell is not None:
            try:
                self._protocol.close_shell(self._shell)
            except Exception as e:  # closing is best effort: the host expires idle shells itself
                log.debug("closing the WinRM shell failed: %s", e)
        self._shell = None

    def _guard(self, fn: Any) -> Any:
        """Run fn, turning transport and auth failures into errors with a fix hint."""
        s = self.settings
        where = f"{s.endpoint} (transport {s.transport})"
        try:
            import requests
            from winrm import exceptions as wx
        except ImportError:
            raise HostNotUsable("pywinrm is not installed", "pip install pywinrm") from None
        try:
            return fn()
        except requests.exceptions.SSLError as e:
            raise HostNotUsable(
                f"The TLS certificate of {where} is not trusted: {_short(e)}",
                "Pass the CA that signed the host's WinRM certificate with --hyperv-ca-file FILE, or (unsafe) "
                "skip validation with --hyperv-insecure.") from None
        except requests.exceptions.ConnectionError as e:
            raise HostNotUsable(
                f"Cannot reach WinRM at {where}: {_short(e)}",
                "Check --hyperv-host and --hyperv-port (5986 HTTPS, 5985 HTTP) and that WinRM listens on the host "
                "(winrm quickconfig -transport:https).") from None
        except requests.exceptions.Timeout:
            raise DriverError(f"WinRM at {where} did not answer in time", "Retry; check the host's load.") from None
        except wx.InvalidCredentialsError as e:
            raise HostNotUsable(
                f"WinRM at {where} rejected the credentials: {e}",
                "Check --hyperv-user and the password (--hyperv-password, HYPERV_PASSWORD or --hyperv-password-file),"
                " and that the transport is enabled on the host (winrm get winrm/config/service/auth).") from None
        except wx.WinRMTransportError as e:
            raise DriverError(f"WinRM at {where} answered HTTP {e.code}: {_short(str(e.response_text))}",
                              "Check the WinRM service on the host (winrm get winrm/config); run with -D.") from None
        except wx.WinRMError as e:
            msg = str(e)
            if "not installed" in msg:
                extra = EXTRAS.get(s.transport, "pywinrm")
                raise HostNotUsable(f"WinRM transport {s.transport!r} is not available: {msg}",
                                    f"pip install '{extra}', or choose another --hyperv-transport.") from None
            raise DriverError(f"WinRM error from {where}: {msg}", "Run with -D for details.") from None


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) < 300 else text[:300] + "..."
