#!/usr/bin/env python3
"""ls with hanging engines (issue #15 point 5): wall time of `machine ls` (default -t) over 20 `none` machines
whose engines are fake dockerds on 127.0.0.1 (mutual TLS, GET /version), side by side in one run:
all 20 answering, then 5 of them accepting TCP but never answering. Target: <= 2.5 s with the 5 hanging,
and those 5 shown in STATE Timeout (as docker-machine's ls shows a host it could not finish asking) with the
timeout in ERRORS, the other 15 Running.

The engines run in a child process (their TLS handshakes do not share ls's interpreter or this one's GIL).
Usage: python3 bench/ls_bench.py [-n 5] [--machines 20] [--hanging 5]
Prints a table and a JSON line with the host load.
"""

from __future__ import annotations

import argparse
import http.server
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine.provision import certs  # noqa: E402

TARGET_S = 2.5


def _engine(certs_dir: Path, work: Path) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"Version": "27.3.1", "ApiVersion": "1.47"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(work / "server.pem", work / "server-key.pem")
    ctx.load_verify_locations(certs_dir / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    return server


def _silent() -> socket.socket:
    """Accepts TCP connections and never says a word (an engine that hangs)."""
    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def loop() -> None:
        while True:
            conn, _ = srv.accept()
            held.append(conn)

    threading.Thread(target=loop, daemon=True).start()
    return srv


def _serve(certs_dir: Path, work: Path, machines: int, hanging: int, ports: multiprocessing.Queue) -> None:
    certs.issue_server_cert(certs_dir, work / "server.pem", work / "server-key.pem", name="engine",
                            ips=["127.0.0.1"], dns=["localhost"])
    answering = [_engine(certs_dir, work) for _ in range(machines)]
    for server in answering:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = [_silent() for _ in range(hanging)]
    ports.put(([s.server_address[1] for s in answering], [s.getsockname()[1] for s in silent]))
    threading.Event().wait()


def _ls(exe: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[dict]]:
    times, rows = [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([*exe, "ls", "--format", "json"], env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        rows = json.loads(out.stdout)
    return times, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5, help="ls runs per case")
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--hanging", type=int, default=5)
    args = parser.parse_args()
    exe = [sys.executable, "-m", "machine"]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        env = {**os.environ, "MACHINE_STORAGE_PATH": str(store), "DOCKER_CONFIG": str(Path(tmp) / "dc")}
        env.pop("DOCKER_HOST", None)
        env.pop("DOCKER_CONTEXT", None)
        certs.ensure_ca(store / "certs")
        ports: multiprocessing.Queue = multiprocessing.Queue()
        server = multiprocessing.Process(target=_serve, daemon=True,
                                         args=(store / "certs", Path(tmp), args.machines, args.hanging, ports))
        server.start()
        try:
            answering, silent = ports.get(timeout=60)
            for i, port in enumerate(answering):
                subprocess.run([*exe, "create", "-d", "none", "--url", f"tcp://127.0.0.1:{port}", f"m{i:02d}"],
                               env=env, check=True, capture_output=True)
            healthy_times, healthy_rows = _ls(exe, env, args.n)
            hung = [f"m{i:02d}" for i in range(args.hanging)]
            for name, port in zip(hung, silent, strict=True):  # the same machines, their engines now silent
                cfg_path = store / "machines" / name / "config.json"
                cfg = json.loads(cfg_path.read_text())
                cfg["driver_options"]["url"] = cfg["engine"]["url"] = f"tcp://127.0.0.1:{port}"
                cfg_path.write_text(json.dumps(cfg))
            hang_times, hang_rows = _ls(exe, env, args.n)
        finally:
            server.kill()
    ok = sum(r["DockerVersion"] == "v27.3.1" for r in healthy_rows)
    timeouts = sorted(r["Name"] for r in hang_rows if r["State"] == "Timeout" and "(timeout)" in r["Error"])
    running = sum(r["State"] == "Running" for r in hang_rows)
    result = {
        "load_avg": os.getloadavg(), "runs": args.n, "machines": args.machines,
        "healthy": {"median_s": round(statistics.median(healthy_times), 2), "max_s": round(max(healthy_times), 2),
                    "answered": ok},
        "hanging": {"median_s": round(statistics.median(hang_times), 2), "max_s": round(max(hang_times), 2),
                    "shown_as_timeout": timeouts, "running": running,
                    "answered": sum(r["DockerVersion"] == "v27.3.1" for r in hang_rows)},
        "target_s": TARGET_S,
    }
    print(f"{'case':<28}{'median s':>10}{'max s':>8}  answered")
    print(f"{f'{args.machines} answering':<28}{result['healthy']['median_s']:>10}{result['healthy']['max_s']:>8}"
          f"  {ok}/{args.machines}")
    print(f"{f'{args.hanging} of {args.machines} hanging':<28}{result['hanging']['median_s']:>10}"
          f"{result['hanging']['max_s']:>8}  {result['hanging']['answered']}/{args.machines}"
          f" (STATE Timeout, timeout in ERRORS: {', '.join(timeouts)}; Running: {running})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
