"""The QMP client against a fake server speaking the real protocol."""

from __future__ import annotations

import shutil
import time

import pytest
from machine.drivers.qemu import qmp
from test_qemu_fakes import FakeQMP, short_socket_path


@pytest.fixture
def server():
    path = short_socket_path()
    srv = FakeQMP(path)
    yield srv
    srv.close()
    shutil.rmtree(path.parent, ignore_errors=True)


def test_negotiates_capabilities_then_queries_status(server: FakeQMP) -> None:
    assert qmp.query_status(server.address) == "running"
    assert server.commands == ["qmp_capabilities", "query-status"]


def test_greeting_is_kept(server: FakeQMP) -> None:
    with qmp.QMPClient(server.address) as q:
        assert q.greeting["QMP"]["version"]["qemu"]["major"] == 7


def test_events_between_command_and_return_are_skipped_and_kept(server: FakeQMP) -> None:
    with qmp.QMPClient(server.address) as q:
        assert q.execute("system_powerdown") == {}
        assert [e["event"] for e in q.events] == ["POWERDOWN"]


def test_error_reply_raises(server: FakeQMP) -> None:
    with qmp.QMPClient(server.address) as q, pytest.raises(qmp.QMPError, match="CommandNotFound"):
        q.execute("no-such-command")


def test_quit_tolerates_the_closed_connection(server: FakeQMP) -> None:
    qmp.command(server.address, "quit", tolerate_eof=True)
    assert "quit" in server.commands


def test_sequential_sessions(server: FakeQMP) -> None:
    server.status = "paused"
    assert qmp.query_status(server.address) == "paused"
    qmp.command(server.address, "cont")
    assert qmp.query_status(server.address) == "running"


def test_missing_socket_fails_fast(tmp_path) -> None:
    start = time.monotonic()
    with pytest.raises(qmp.QMPError, match="cannot connect"):
        qmp.query_status(qmp.unix_address(tmp_path / "nope.sock"), timeout=1)
    assert time.monotonic() - start < 1


def test_server_that_never_greets_times_out() -> None:
    path = short_socket_path()
    srv = FakeQMP(path, hang=True)
    try:
        start = time.monotonic()
        with pytest.raises(qmp.QMPError, match="did not answer"):
            qmp.query_status(srv.address, timeout=0.5)
        assert time.monotonic() - start < 2
    finally:
        srv.close()
        shutil.rmtree(path.parent, ignore_errors=True)


def test_unknown_address_kind() -> None:
    with pytest.raises(qmp.QMPError, match="unknown QMP address"):
        qmp.query_status("pipe:foo")
