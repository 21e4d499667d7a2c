"""ls says why an engine could not be asked (issue #15 point 5): ERRORS for engines on 127.0.0.1 that refuse,
close the connection (EOF), never answer (timeout, bounded by the engine budget, not the whole -t), do not
speak TLS or present a certificate of another CA, and for a machine whose client certificate is gone. As in
docker-machine's ls (commands/ls.go at b170508b: the none driver's GetState is always Running; an engine that
refuses, closes or fails TLS gives a Running row with "Unable to query docker version: ..." in ERRORS; a host
whose query does not end within the timeout is a row in state Timeout), an engine that answers nothing in time
makes the row Timeout (with its URL and the reason, which docker-machine leaves blank); the others stay Running
with the reason beside them."""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

import pytest
from fakes.cli import run
from test_ls import serve_engine

from machine.hostports import free_port
from machine.ls import listing
from machine.store import Store


def _serve(mode: str) -> socket.socket:
    """A plain TCP listener on 127.0.0.1 that closes at once (eof), accepts and stays silent (hang), or
    answers a TLS hello with plain HTTP (tls)."""
    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            if mode == "eof":
                conn.close()
            elif mode == "hang":
                held.append(conn)  # accepted, never answered
            else:  # plain HTTP where TLS is expected
                conn.recv(1000)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return srv


def _create(name: str, port: int) -> None:
    res = run("create", "-d", "none", "--url", f"tcp://127.0.0.1:{port}", name)
    assert res.code == 0, res


def test_errors_say_why_each_engine_could_not_be_asked(store_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "active_targets", lambda: ("", None))
    monkeypatch.setattr(listing, "ENGINE_TIMEOUT", 0.5)
    servers = {mode: _serve(mode) for mode in ("eof", "hang", "tls")}
    engines = []
    try:
        refused = free_port()
        _create("refused", refused)
        for mode, srv in servers.items():
            _create(mode, srv.getsockname()[1])
        store = Store(store_root)
        (tmp_path / "good").mkdir()
        engines.append(serve_engine(store.certs_dir, tmp_path / "good", "27.3.1"))
        _create("healthy", engines[-1].port)
        _create("nokey", engines[-1].port)
        (store.machine_dir("nokey") / "key.pem").unlink()
        (tmp_path / "other").mkdir()  # a server certificate of another CA
        engines.append(serve_engine(tmp_path / "other" / "ca", tmp_path / "other", "27.3.1"))
        _create("otherca", engines[-1].port)
        (tmp_path / "slow").mkdir()  # TLS handshake done, the HTTP answer never comes (within the budget)
        engines.append(serve_engine(store.certs_dir, tmp_path / "slow", "27.3.1", hang=True))
        _create("slowhttp", engines[-1].port)

        res = run("ls", "--format", "json")
        assert res.code == 0, res
        rows = {r["Name"]: r for r in json.loads(res.out)}
        healthy = rows.pop("healthy")
        assert (healthy["State"], healthy["DockerVersion"], healthy["Error"]) == ("Running", "v27.3.1", ""), healthy
        assert all(r["DockerVersion"] == "Unknown" and r["Error"].startswith("Unable to query docker version: ")
                   for r in rows.values()), rows
        # not healthy: the engines that never answered are Timeout (docker-machine's state for them); the ones that
        # said no are Running, as the none driver says, with the reason in ERRORS (as docker-machine)
        assert {n: r["State"] for n, r in rows.items()} == {
            "refused": "Running", "eof": "Running", "hang": "Timeout", "tls": "Running", "nokey": "Running",
            "otherca": "Running", "slowhttp": "Timeout"}, rows
        assert rows["hang"]["URL"].startswith("tcp://127.0.0.1:") and rows["hang"]["Active"] == "-"
        assert f"connection refused by 127.0.0.1:{refused}" in rows["refused"]["Error"]
        assert "EOF from 127.0.0.1" in rows["eof"]["Error"]
        # the engines get ENGINE_TIMEOUT from the start of the queries, less what the driver took: not -t (10 s)
        for name in ("hang", "slowhttp"):
            waited = re.search(r"no answer from 127\.0\.0\.1:\d+ within (\d\.\d) s \(timeout\)", rows[name]["Error"])
            assert waited and 0.1 <= float(waited[1]) <= 0.5, rows[name]
        assert "TLS error with 127.0.0.1" in rows["tls"]["Error"]
        assert "TLS error with 127.0.0.1" in rows["otherca"]["Error"]
        assert "certificate verify failed" in rows["otherca"]["Error"]
        assert "no client certificate" in rows["nokey"]["Error"] and "key.pem missing" in rows["nokey"]["Error"]
    finally:
        for srv in servers.values():
            srv.close()
        for engine in engines:
            engine.close()
