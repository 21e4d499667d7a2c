"""A Docker-engine stand-in on 127.0.0.1 speaking mutual TLS like `dockerd --tlsverify`: it requires a client
certificate signed by the CA and answers GET /version like dockerd (after 5 s when `hang`)."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from pathlib import Path


class FakeEngine:
    def __init__(self, server_cert: Path, server_key: Path, ca: Path, port: int = 0, version: str = "99.1.0",
                 api: str = "1.45", hang: bool = False) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(server_cert), str(server_key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(ca))
        self.requests: list[str] = []
        self._released = threading.Event()  # a hanging handler returns when the server closes, not later
        engine = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                engine.requests.append(self.path)
                if hang:
                    engine._released.wait(5)
                body = json.dumps({"Version": version, "ApiVersion": api}).encode()
                self.send_response(200 if self.path.endswith("/version") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        # a client that gave up on a hanging request makes writing the answer fail: expected, not a traceback
        # printed into whatever test runs next
        self.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
