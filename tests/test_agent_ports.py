"""The agent's pure parts (which forwards are wanted, what changes, the guest's /proc/net tables), its SSH relay
against a real paramiko server on 127.0.0.1, its process control, and `machine ports`."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from machine.agent import control, hostnet, portspec
from machine.agent.portspec import HYPERVISOR, SSH, Forward
from machine.agent.sshrelay import TCPRelay, host_port_free

WEB = {"Id": "a" * 64, "Names": ["/web"], "HostConfig": {"NetworkMode": "bridge"},
       "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                 {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                 {"PrivatePort": 443, "Type": "tcp"}]}
DNS = {"Id": "b" * 64, "Names": ["/dns"], "Ports": [{"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353,
                                                     "Type": "udp"}]}
LOCAL = {"Id": "c" * 64, "Names": ["/local"], "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 9000,
                                                         "Type": "tcp"}]}
HOSTNET = {"Id": "d" * 64, "Names": ["/hn"], "HostConfig": {"NetworkMode": "host"}, "Ports": []}


def forwards(wanted: dict) -> dict:
    return {k: w.forward for k, w in wanted.items()}


# -- wanted forwards ------------------------------------------------------------------------------------------


def test_published_ports_become_hypervisor_forwards_on_the_machine_address() -> None:
    wanted = portspec.wanted_from_containers([WEB, DNS], "127.0.0.2", HYPERVISOR)
    assert forwards(wanted) == {
        ("tcp", 8080): Forward("tcp", "127.0.0.2", 8080, "", 8080, HYPERVISOR),
        ("udp", 5353): Forward("udp", "127.0.0.2", 5353, "", 5353, HYPERVISOR),
    }
    assert wanted[("tcp", 8080)].containers == ["web"]  # the IPv4 and IPv6 lines are one forward
    assert not any(w.unsupported for w in wanted.values())


def test_exposed_but_unpublished_ports_are_not_forwarded() -> None:
    wanted = portspec.wanted_from_containers([WEB], "127.0.0.1", HYPERVISOR)
    assert ("tcp", 443) not in wanted


def test_a_port_published_on_guest_loopback_stays_on_host_loopback_over_ssh() -> None:
    # the machine exposes its ports on a LAN address; the loopback-only one must not follow
    wanted = portspec.wanted_from_containers([LOCAL, WEB], "192.0.2.10", HYPERVISOR)
    assert wanted[("tcp", 9000)].forward == Forward("tcp", "127.0.0.1", 9000, "127.0.0.1", 9000, SSH)
    assert wanted[("tcp", 8080)].forward.host_ip == "192.0.2.10"
    # with a loopback machine address (127.0.0.2), that address is kept
    assert portspec.wanted_from_containers([LOCAL], "127.0.0.2", HYPERVISOR)[("tcp", 9000)].forward.host_ip \
        == "127.0.0.2"


def test_ssh_path_relays_to_guest_loopback_and_reports_udp_as_unsupported() -> None:
    wanted = portspec.wanted_from_containers([WEB, DNS], "127.0.0.1", SSH)
    assert wanted[("tcp", 8080)].forward == Forward("tcp", "127.0.0.1", 8080, "127.0.0.1", 8080, SSH)
    assert "UDP" in wanted[("udp", 5353)].unsupported


def test_one_port_published_by_two_containers_lists_both() -> None:
    other = {**WEB, "Id": "e" * 64, "Names": ["/web2"]}
    wanted = portspec.wanted_from_containers([WEB, other], "127.0.0.1", HYPERVISOR)
    assert wanted[("tcp", 8080)].containers == ["web", "web2"]


def test_host_network_containers_are_found() -> None:
    assert portspec.host_network_ids([WEB, HOSTNET]) == {"d" * 64: "hn"}


# -- the difference -------------------------------------------------------------------------------------------


def test_diff_adds_removes_and_replaces_changed_forwards() -> None:
    a = Forward("tcp", "127.0.0.1", 8080, "", 8080, HYPERVISOR)
    b = Forward("udp", "127.0.0.1", 5353, "", 5353, HYPERVISOR)
    c_old = Forward("tcp", "127.0.0.1", 9000, "", 9000, HYPERVISOR)
    c_new = Forward("tcp", "127.0.0.1", 9000, "127.0.0.1", 9000, SSH)
    plan = portspec.diff({a.key: a, c_old.key: c_old}, {b.key: b, c_new.key: c_new})
    assert plan.remove == [a, c_old]
    assert plan.add == [c_new, b]
    assert portspec.diff({a.key: a}, {a.key: a}) == portspec.Plan(add=[], remove=[])


# -- /proc/net ---------------------------------------------------------------------------------------------------

PROC_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0
   2: 0F02000A:0016 0202000A:C350 01 00000000:00000000 02:00000000 00000000     0        0 1003 4 0 20 4 30 10 -1
"""
PROC_TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0 100 0 0 10 0
"""  # noqa: E501
PROC_UDP = """   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  483: 00000000:46A1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 13121 2 0 0
  484: 0F02000A:0044 0202000A:0043 01 00000000:00000000 00:00000000 00000000     0        0 13122 2 0 0
"""  # noqa: E501


def test_proc_net_listening_sockets_only() -> None:
    assert portspec.parse_proc_net(PROC_TCP, "tcp") == [("0.0.0.0", 22, 1001), ("127.0.0.1", 8080, 1002)]
    assert portspec.parse_proc_net(PROC_TCP6, "tcp") == [("::", 8081, 2001), ("127.0.0.1", 8082, 2002)]
    assert portspec.parse_proc_net(PROC_UDP, "udp") == [("0.0.0.0", 18081, 13121)]


def test_snapshot_and_owners_attribute_listeners_to_containers() -> None:
    lines = ["@tcp", *PROC_TCP.splitlines(), "@tcp6", *PROC_TCP6.splitlines(), "@udp", *PROC_UDP.splitlines(),
             "@udp6", "  sl  local_address"]
    snap = hostnet.parse_snapshot(lines)
    assert ("tcp", "0.0.0.0", 22, 1001) in snap and ("udp", "0.0.0.0", 18081, 13121) in snap
    ls_output = ("@" + "d" * 64 + "\nlrwx------ 1 root root 64 Nov 29 08:00 0 -> /dev/null\n"
                 "lrwx------ 1 root root 64 Nov 29 08:00 3 -> socket:[2001]\n@" + "f" * 64 + "\n"
                 "lrwx------ 1 root root 64 Nov 29 08:00 4 -> socket:[13121]\n")
    assert hostnet.parse_owners(ls_output) == {2001: "d" * 64, 13121: "f" * 64}
    wanted: dict = {}
    portspec.add_listeners(wanted, [("tcp", "::", 8081, "hn"), ("tcp", "127.0.0.1", 8082, "hn")], "127.0.0.1",
                           HYPERVISOR)
    assert wanted[("tcp", 8081)].forward.path == HYPERVISOR
    assert wanted[("tcp", 8082)].forward == Forward("tcp", "127.0.0.1", 8082, "127.0.0.1", 8082, SSH)
    assert "grep -l" in hostnet.owners_command(["d" * 64])


# -- host ports --------------------------------------------------------------------------------------------------


def test_host_port_free_sees_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not host_port_free("tcp", "127.0.0.1", port)
    assert host_port_free("tcp", "127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        assert not host_port_free("udp", "127.0.0.1", u.getsockname()[1])


# -- the SSH relay, against a paramiko server that serves direct-tcpip --------------------------------------------


class _Link:
    """An SSHLink stand-in holding a real paramiko client transport."""

    def __init__(self, transport) -> None:  # noqa: ANN001
        self._t = transport

    def transport(self):  # noqa: ANN201
        return self._t


@pytest.fixture
def ssh_pair():
    """A paramiko server on 127.0.0.1 allowing direct-tcpip to 127.0.0.1, and a client transport to it."""
    paramiko = pytest.importorskip("paramiko")
    host_key = paramiko.RSAKey.generate(2048)

    class Server(paramiko.ServerInterface):
        def check_auth_none(self, username: str) -> int:
            return paramiko.AUTH_SUCCESSFUL

        def get_allowed_auths(self, username: str) -> str:
            return "none"

        def check_channel_direct_tcpip_request(self, chanid: int, origin, destination) -> int:  # noqa: ANN001
            if destination[0] != "127.0.0.1":
                return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
            threading.Thread(target=_connect_later, args=(chanid, destination), daemon=True).start()
            return paramiko.OPEN_SUCCEEDED

    server_side: dict = {}

    def _connect_later(chanid: int, destination) -> None:  # noqa: ANN001
        chan = server_side["t"].accept(10)
        target = socket.create_connection(destination)
        back = threading.Thread(target=TCPRelay._pump, args=(target.recv, chan.sendall, chan, target), daemon=True)
        back.start()
        TCPRelay._pump(chan.recv, target.sendall, target, chan)
        back.join(10)
        chan.close()
        target.close()

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    client_sock = socket.create_connection(lsock.getsockname())
    server_conn, _ = lsock.accept()
    st = paramiko.Transport(server_conn)
    st.add_server_key(host_key)
    server_side["t"] = st
    serving = threading.Thread(target=st.start_server, kwargs={"server": Server()}, daemon=True)
    serving.start()  # it blocks until the client has negotiated
    ct = paramiko.Transport(client_sock)
    ct.start_client()
    serving.join(30)
    ct.auth_none("test")
    yield ct
    ct.close()
    st.close()
    lsock.close()




def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                conn.sendall(b"echo:" + data)
    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_tcp_relay_carries_connections_and_frees_the_port_on_close(ssh_pair) -> None:  # noqa: ANN001
    srv, guest_port = _echo_server()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = TCPRelay(_Link(ssh_pair), "127.0.0.1", port, "127.0.0.1", guest_port)
    try:
        with pytest.raises(OSError):  # the port is ours now: a second relay is refused
            TCPRelay(_Link(ssh_pair), "127.0.0.1", port, "127.0.0.1", guest_port)
        for word in (b"one", b"two"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(word)
                c.shutdown(socket.SHUT_WR)
                assert c.recv(100) == b"echo:" + word
    finally:
        relay.close()
        srv.close()
    deadline = time.monotonic() + 5
    while not host_port_free("tcp", "127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host_port_free("tcp", "127.0.0.1", port)


# -- process control and `machine ports` ---------------------------------------------------------------------------


def test_control_finds_only_its_own_agent(tmp_path: Path) -> None:
    mdir = tmp_path / "m"
    mdir.mkdir()
    assert control.agent_pid(mdir) is None
    (mdir / control.PID_FILE).write_text("1\n")  # alive, but init: not this machine's agent
    assert control.agent_pid(mdir) is None
    assert control.stop(mdir) is False and not (mdir / control.PID_FILE).exists()


def test_start_runs_a_detached_agent_that_exits_when_the_machine_is_gone(store_root: Path) -> None:
    """A real agent process for a machine of the `none`-like fake: it starts detached, is found by its pid
    file, and exits by itself when its machine directory disappears."""
    from machine.store import MachineConfig, Store

    store = Store(store_root)
    cfg = MachineConfig(name="gone", driver="generic", driver_options={"ip_address": "127.0.0.1", "ssh_port": 9},
                        engine={"transport": "tls", "url": "tcp://127.0.0.1:9"})
    store.save(cfg)
    mdir = store.machine_dir("gone")
    pid, started = control.start(store.root, "gone", mdir)
    assert started and control.agent_pid(mdir) == pid
    assert control.start(store.root, "gone", mdir) == (pid, False)  # one agent per machine
    # generic at 127.0.0.1:9 does not answer: the VM "is not running", so the agent leaves by itself
    deadline = time.monotonic() + 60
    while control.running(mdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not control.running(mdir)
    assert "agent exits: the VM is not running" in (mdir / control.LOG_FILE).read_text()
    assert control.read_status(mdir)["stopped"] is True


def test_ports_command_lists_forwards_and_failures(store_root: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from machine.cli import cli
    from machine.store import MachineConfig, Store

    store = Store(store_root)
    store.save(MachineConfig(name="m", driver="qemu", engine={"transport": "tls"}, ssh={"user": "root"}))
    mdir = store.machine_dir("m")
    runner = CliRunner()
    res = runner.invoke(cli, ["ports", "m"])
    assert res.exit_code == 1 and "not running" in str(res.exception)
    # a stand-in agent: a process whose command line names the module and the machine dir
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", control.MODULE, str(mdir)])
    try:
        (mdir / control.PID_FILE).write_text(f"{proc.pid}\n")
        control.write_status(mdir, {
            "engine": "connected",
            "forwards": [{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 8080, "guest_ip": "",
                          "guest_port": 8080, "path": "hypervisor", "containers": ["web"]}],
            "failed": [{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 9000, "guest_ip": "",
                        "guest_port": 9000, "path": "hypervisor", "containers": ["other"],
                        "error": "host port 127.0.0.1:9000/tcp is already in use on this host"}]})
        res = runner.invoke(cli, ["ports", "m"])
        assert res.exit_code == 0, res.output
        lines = res.output.splitlines()
        assert lines[0].split() == ["PROTO", "HOST", "GUEST", "VIA", "CONTAINERS"]
        assert lines[1].split() == ["tcp", "127.0.0.1:8080", "8080", "hypervisor", "web"]
        assert "NOT FORWARDED tcp 127.0.0.1:9000 (other): host port 127.0.0.1:9000/tcp is already in use" in lines[2]
        res = runner.invoke(cli, ["ports", "m", "--json"])
        assert json.loads(res.output)["failed"][0]["host_port"] == 9000
    finally:
        proc.kill()
        proc.wait()


def test_ports_command_on_a_machine_without_agent_says_why(store_root: Path) -> None:
    from click.testing import CliRunner

    from machine.cli import cli
    from machine.store import MachineConfig, Store

    Store(store_root).save(MachineConfig(name="s", driver="qemu", engine={"transport": "ssh"}, ssh={"user": "root"}))
    res = CliRunner().invoke(cli, ["ports", "s"])
    assert res.exit_code == 1 and "has no agent" in str(res.exception)
