"""A small WinRM (WS-Management shell) server on 127.0.0.1 that real pywinrm talks to.

It speaks the protocol pywinrm uses: Create shell (transfer/Create -> ShellId), Command
(-> CommandId), Send (stdin: base64 <rsp:Stream Name="stdin" End=...>), Receive (base64
stdout/stderr <rsp:Stream> elements, CommandState Running then Done with ExitCode), Signal
terminate, Delete shell; SOAP faults for unknown shells. Envelopes
follow the recorded responses in pywinrm's own tests (FIXTURES.md). Commands go to a FakeHyperV.

Auth: Basic (HTTP or HTTPS), checked against one user/password; NTLM with pyspnego's NTLM acceptor
(credentials from an NTLM_USER_FILE), over HTTPS, or over HTTP with WinRM message encryption
(multipart/encrypted, sealed with the NTLM session keys); unencrypted SOAP after NTLM over HTTP is
refused, as WinRM's default AllowUnencrypted=false does.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import socket
import ssl
import struct
import threading
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import hv_recorded as rec
from hv_model import FakeHyperV

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CMD_URI = SHELL + "/cmd"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
BOUNDARY = b"--Encrypted Boundary"
SPNEGO_ENCRYPTED = "application/HTTP-SPNEGO-session-encrypted"
STREAM_PIECE = 4096  # bytes of stdout per Receive response (real hosts also split output)


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        '<?xml version="1.0" ?>\n'
        '<s:Envelope xml:lang="en-US" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd" '
        'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" '
        'xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
        'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _fault(relates_to: str, code: str, text: str) -> bytes:
    body = (
        "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value></s:Subcode>"
        f'</s:Code><s:Reason><s:Text xml:lang="en-US">{text}</s:Text></s:Reason><s:Detail>'
        f'<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{code}" '
        f'Machine="127.0.0.1"><f:Message>{text}</f:Message></f:WSManFault></s:Detail></s:Fault>'
    )
    return _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


class WinRMState:
    def __init__(self, host: FakeHyperV, user: str, password: str, ntlm: bool) -> None:
        self.host = host
        self.user, self.password, self.ntlm = user, password, ntlm
        self.shells: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.requests: list[str] = []  # actions seen, for tests
        self.auth_seen: list[str] = []
        self.sends = 0  # stdin messages received


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- auth -------------------------------------------------------------------------------------
    def _deny(self, extra: dict[str, str] | None = None) -> None:
        self.send_response(401)
        if extra:
            for k, v in extra.items():
                self.send_header(k, v)
        else:
            if self.server.state.ntlm:
                self.send_header("WWW-Authenticate", "Negotiate")
                self.send_header("WWW-Authenticate", "NTLM")
            self.send_header("WWW-Authenticate", 'Basic realm="WSMAN"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authorized(self) -> bool:
        st: WinRMState = self.server.state
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "basic":
            st.auth_seen.append("basic")
            try:
                raw = base64.b64decode(token)
            except ValueError:
                return False
            # RFC 7617 leaves the charset open; requests sends latin-1, other clients UTF-8.
            for enc in ("utf-8", "latin-1"):
                try:
                    user, _, pw = raw.decode(enc).partition(":")
                except UnicodeDecodeError:
                    continue
                if user == st.user and pw == st.password:
                    return True
            return False
        if scheme.lower() in ("ntlm", "negotiate") and st.ntlm:
            return self._ntlm_step(scheme, token)
        return getattr(self, "_ntlm_done", False)

    def _ntlm_step(self, scheme: str, token: str) -> bool:
        import spnego

        ctx = getattr(self, "_ntlm_ctx", None)
        if ctx is None:
            ctx = spnego.server(protocol="ntlm")
            self._ntlm_ctx = ctx
        try:
            out = ctx.step(base64.b64decode(token))
        except Exception:
            self._ntlm_ctx = None
            return False
        if not ctx.complete:
            self._pending_challenge = f"{scheme} {base64.b64encode(out or b'').decode()}"
            return False
        self.server.state.auth_seen.append("ntlm")
        self._ntlm_done = True
        return True

    # -- SOAP ------------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._pending_challenge = None
        if not self._authorized():
            if self._pending_challenge:
                self._deny({"WWW-Authenticate": self._pending_challenge})
            else:
                self._deny()
            return
        if not body:  # pywinrm's encryption setup: an empty POST that only authenticates
            self._reply(200, b"")
            return
        ctype = self.headers.get("Content-Type", "")
        encrypted = ctype.startswith("multipart/encrypted") and SPNEGO_ENCRYPTED in ctype
        if encrypted:
            if not getattr(self, "_ntlm_done", False):
                self._reply(400, b"")
                return
            body = self._unwrap(body)
        elif not ctype.startswith("application/soap+xml"):
            self._reply(415, b"")
            return
        elif getattr(self, "_ntlm_done", False) and not isinstance(self.connection, ssl.SSLSocket):
            # WinRM's AllowUnencrypted=false (the default): NTLM over HTTP must seal its messages
            self._reply(400, b"")
            return
        status, reply = self.server.state_handle(body)
        self._reply(status, reply, encrypt=encrypted)

    # [MS-WSMV] 2.2.9.1.1: SPNEGO/NTLM session encryption (multipart/encrypted), as pywinrm's
    # winrm/encryption.py builds and parses it, with pyspnego's wrap_winrm/unwrap_winrm.
    def _unwrap(self, body: bytes) -> bytes:
        parts = [p for p in body.split(BOUNDARY + b"\r\n") if p]
        out = b""
        for i in range(0, len(parts) - 1, 2):
            length = int(parts[i].split(b"Length=")[1].strip())
            payload = parts[i + 1]
            if payload.endswith(BOUNDARY + b"--\r\n"):
                payload = payload[: -len(BOUNDARY + b"--\r\n")]
            data = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
            sig_len = struct.unpack("<i", data[:4])[0]
            plain = self._ntlm_ctx.unwrap_winrm(data[4:4 + sig_len], data[4 + sig_len:])
            if len(plain) != length:
                raise ValueError("encrypted message length mismatch")
            out += plain
        return out

    def _wrap(self, plain: bytes) -> bytes:
        res = self._ntlm_ctx.wrap_winrm(plain)
        return (BOUNDARY + b"\r\n\tContent-Type: " + SPNEGO_ENCRYPTED.encode() + b"\r\n"
                b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(plain)).encode()
                + b"\r\n" + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
                + struct.pack("<i", len(res.header)) + res.header + res.data + BOUNDARY + b"--\r\n")

    def _reply(self, status: int, payload: bytes, encrypt: bool = False) -> None:
        self.send_response(status)
        if encrypt:
            payload = self._wrap(payload)
            self.send_header("Content-Type", f'multipart/encrypted;protocol="{SPNEGO_ENCRYPTED}";'
                                             'boundary="Encrypted Boundary"')
        else:
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class FakeWinRMServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: FakeHyperV, *, user: str = "builder", password: str = "s3cret",
                 tls: tuple[Path, Path] | None = None, ntlm_user_file: Path | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = WinRMState(host, user, password, ntlm=ntlm_user_file is not None)
        self.scheme = "http"
        self._saved_env = os.environ.get("NTLM_USER_FILE")
        if ntlm_user_file is not None:
            os.environ["NTLM_USER_FILE"] = str(ntlm_user_file)  # pyspnego's acceptor reads its users there
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.serve_forever, name="fake-winrm", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self) -> FakeWinRMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
        if self.state.ntlm:
            if self._saved_env is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = self._saved_env

    # -- the shell resource ----------------------------------------------------------------------
    def state_handle(self, raw: bytes) -> tuple[int, bytes]:
        root = ET.fromstring(raw)
        header = root.find("s:Header", NS)
        body = root.find("s:Body", NS)
        if header is None or body is None:
            return 400, b""
        action = (header.findtext("a:Action", "", NS) or "").strip()
        message_id = (header.findtext("a:MessageID", "", NS) or "").strip()
        resource = (header.findtext("w:ResourceURI", "", NS) or "").strip()
        st = self.state
        st.requests.append(action.rsplit("/", 1)[-1])
        if resource != CMD_URI:
            return 500, _fault(message_id, "2150858778", "The WS-Management service cannot process the request. "
                               "The resource URI is not supported.")
        shell_id = None
        for sel in header.findall("w:SelectorSet/w:Selector", NS):
            if sel.get("Name") == "ShellId":
                shell_id = (sel.text or "").strip()
        with st.lock:
            if action == TRANSFER + "/Create":
                return 200, self._create(header, body, message_id)
            shell = st.shells.get(shell_id or "")
            if shell is None:
                return 500, _fault(message_id, rec.SHELL_NOT_FOUND_CODE,
                                   f"The request for the Windows Remote Shell with ShellId {shell_id} failed because "
                                   "the shell was not found on the server.")
            if action == TRANSFER + "/Delete":
                del st.shells[shell_id]
                return 200, _envelope(TRANSFER + "/DeleteResponse", message_id, "")
            if action == SHELL + "/Command":
                return 200, self._command(shell, body, message_id)
            if action == SHELL + "/Send":
                return self._send(shell, body, message_id)
            if action == SHELL + "/Receive":
                return self._receive(shell, body, message_id)
            if action == SHELL + "/Signal":
                sig = body.find("rsp:Signal", NS)
                cid = sig.get("CommandId") if sig is not None else None
                shell["commands"].pop(cid, None)
                return 200, _envelope(SHELL + "/SignalResponse", message_id, "<rsp:SignalResponse/>")
        return 500, _fault(message_id, "2150858771", f"The action {action} is not supported.")

    def _create(self, header: ET.Element, body: ET.Element, message_id: str) -> bytes:
        codepage = "437"
        for opt in header.findall("w:OptionSet/w:Option", NS):
            if opt.get("Name") == "WINRS_CODEPAGE":
                codepage = (opt.text or "437").strip()
        shell_id = str(uuid.uuid4()).upper()
        self.state.shells[shell_id] = {"codepage": codepage, "commands": {}, "first": True}
        return _envelope(TRANSFER + "/CreateResponse", message_id,
                         "<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address><a:ReferenceParameters>"
                         f"<w:ResourceURI>{CMD_URI}</w:ResourceURI><w:SelectorSet>"
                         f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
                         "</a:ReferenceParameters></x:ResourceCreated>")

    def _command(self, shell: dict[str, Any], body: ET.Element, message_id: str) -> bytes:
        cmd = (body.findtext("rsp:CommandLine/rsp:Command", "", NS) or "").strip()
        args = (body.findtext("rsp:CommandLine/rsp:Arguments", "", NS) or "").strip()
        line = f"{cmd} {args}".strip()
        command_id = str(uuid.uuid4()).upper()
        # The process runs once its input is known: at the first Receive, unless the client is
        # still sending stdin (then it waits, as a real process blocked on reading stdin would).
        shell["commands"][command_id] = {"line": line, "stdin": b"", "sending": False, "ended": False, "out": None}
        return _envelope(SHELL + "/CommandResponse", message_id,
                         f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>")

    def _run(self, shell: dict[str, Any], cmd: dict[str, Any]) -> None:
        out, err, code = self.state.host.execute(cmd["line"], cmd["stdin"])
        if shell["first"] and cmd["line"].lower().startswith("powershell"):
            err = rec.CLIXML_PROGRESS + err
            shell["first"] = False
        enc = "utf-8" if shell["codepage"] == "65001" else "cp437"
        cmd.update(out=out.encode(enc, "replace"), err=err.encode(enc, "replace"), code=code)

    def _send(self, shell: dict[str, Any], body: ET.Element, message_id: str) -> tuple[int, bytes]:
        stream = body.find("rsp:Send/rsp:Stream", NS)
        cid = stream.get("CommandId") if stream is not None else None
        cmd = shell["commands"].get(cid or "")
        if stream is None or cmd is None or stream.get("Name") != "stdin":
            return 500, _fault(message_id, "2150858843", "The command was not found.")
        if cmd["ended"] or cmd["out"] is not None:
            return 500, _fault(message_id, "2150859110", "The input stream was already closed.")
        self.state.sends += 1
        cmd["sending"] = True
        cmd["stdin"] += base64.b64decode((stream.text or "").strip())
        cmd["ended"] = stream.get("End", "false").lower() == "true"
        return 200, _envelope(SHELL + "/SendResponse", message_id, "<rsp:SendResponse/>")

    def _receive(self, shell: dict[str, Any], body: ET.Element, message_id: str) -> tuple[int, bytes]:
        ds = body.find("rsp:Receive/rsp:DesiredStream", NS)
        cid = ds.get("CommandId") if ds is not None else None
        cmd = shell["commands"].get(cid)
        if cmd is None:
            return 500, _fault(message_id, "2150858843", "The command was not found.")
        if cmd["out"] is None:
            if cmd["sending"] and not cmd["ended"]:
                running = f'<rsp:CommandState CommandId="{cid}" State="{SHELL}/CommandState/Running"/>'
                return 200, _envelope(SHELL + "/ReceiveResponse", message_id,
                                      f"<rsp:ReceiveResponse>{running}</rsp:ReceiveResponse>")
            self._run(shell, cmd)
        out, cmd["out"] = cmd["out"][:STREAM_PIECE], cmd["out"][STREAM_PIECE:]
        err, cmd["err"] = cmd["err"], b""
        streams = ""
        for name, data in (("stdout", out), ("stderr", err)):
            if data:
                streams += (f'<rsp:Stream Name="{name}" CommandId="{cid}">'
                            f"{base64.b64encode(data).decode()}</rsp:Stream>")
        if cmd["out"]:
            state = f'<rsp:CommandState CommandId="{cid}" State="{SHELL}/CommandState/Running"/>'
        else:
            streams += (f'<rsp:Stream Name="stdout" CommandId="{cid}" End="true"></rsp:Stream>'
                        f'<rsp:Stream Name="stderr" CommandId="{cid}" End="true"></rsp:Stream>')
            state = (f'<rsp:CommandState CommandId="{cid}" State="{SHELL}/CommandState/Done">'
                     f"<rsp:ExitCode>{cmd['code']}</rsp:ExitCode></rsp:CommandState>")
        return 200, _envelope(SHELL + "/ReceiveResponse", message_id,
                              f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>")


@contextlib.contextmanager
def serve(state_dir: Path, **kwargs: Any):
    """A running fake WinRM server with a fake Hyper-V host in state_dir."""
    with FakeWinRMServer(FakeHyperV(state_dir), **kwargs) as srv:
        yield srv
