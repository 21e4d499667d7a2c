"""Published ports on real VMs (qemu, then libvirt; one VM each, shared by the tests of this module, in order):
the machine's agent forwards `-p` TCP to 127.0.0.1, relays a port published on the guest's loopback over SSH,
forwards what a `--network host` container listens on, reports a host port that is taken, releases a forward when
its container stops, brings a `--restart always` container's port back after `machine restart`, is started again
by `machine start` after it died, and is gone after stop and rm.

UDP: the machines are created with the default --DRIVER-restrict (auto: outside networks, as native Linux has;
the test session's QEMU_RESTRICT/LIBVIRT_RESTRICT=on is dropped for them), so a UDP `-p` port answers; the VM is
checked to have no restrict=on on its user network and a default route and name server in the guest, without
contacting anything outside (test traffic stays on 127.0.0.1). PORTS_VM_RESTRICTED=1 creates them with
--DRIVER-restrict on instead and checks that the agent reports the UDP port as not forwarded, naming the reason
(libslirp drops every UDP datagram a restricted guest sends; also checked without a VM in tests/drivers).
TCG here: a create takes 1-3 minutes, the module 5-10 per driver under load.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from bench.portsimage import missing, write_ports_rootfs
from machine.agent import control
from machine.agent.sshrelay import host_port_free
from tests.isos.mos_helpers import free_port
from tests.vm import vmhelpers
from tests.vm.vmhelpers import docker, docker_env, libvirt_reason, machine, pids_of, skip_reason

pytestmark = [pytest.mark.vm, pytest.mark.slow]

DEADLINE = 30.0  # seconds a forward may take to appear on this loaded 2-core host (bench/ports_bench.py times it)
IMAGE = "ports:test"


def http_get(port: int, timeout: float = DEADLINE) -> str:
    return vmhelpers.http_get(port, timeout)


def udp_echo(port: int, timeout: float = DEADLINE) -> bytes:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        while time.monotonic() < deadline:
            s.sendto(b"ping", ("127.0.0.1", port))
            try:
                return s.recvfrom(1024)[0]
            except OSError:
                continue
    return b""


def wait(cond, timeout: float = DEADLINE) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


class VM:
    def __init__(self, driver: str, root: Path, tmp: Path) -> None:
        self.driver, self.root, self.tmp = driver, root, tmp
        self.name = f"pt-{driver[:2]}-{uuid.uuid4().hex[:4]}"
        self.env = {**os.environ, "MACHINE_STORAGE_PATH": str(root), "DOCKER_CONFIG": str(tmp / "docker-config")}
        self.env.pop("DOCKER_HOST", None)
        self.dir = root / "machines" / self.name
        self.denv: dict[str, str] = {}

    def m(self, *args: str, timeout: float = 900):  # noqa: ANN201
        return machine(*args, env=self.env, timeout=timeout)

    def d(self, *args: str, timeout: float = 300):  # noqa: ANN201
        return docker(*args, env=self.denv, timeout=timeout)

    def run(self, *args: str) -> str:
        res = self.d("run", "-d", *args)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()


@pytest.fixture(scope="module", params=["qemu", "libvirt"])
def vm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    reason = skip_reason() or missing() or (libvirt_reason() if request.param == "libvirt" else None)
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp(f"ports-{request.param}")
    v = VM(request.param, tmp / "store", tmp)
    v.unrestricted = os.environ.get("PORTS_VM_RESTRICTED") != "1"
    v.env.pop(f"{v.driver.upper()}_RESTRICT", None)  # the product's default, not the test session's "on"
    extra = [] if v.unrestricted else [f"--{v.driver}-restrict", "on"]
    res = v.m("create", "-d", v.driver, *extra, f"--{v.driver}-memory", "1024", v.name)
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        v.denv = docker_env(v.name, v.env)
        imp = v.d("import", str(write_ports_rootfs(tmp / "ports.tar")), IMAGE)
        assert imp.returncode == 0, imp.stderr
        yield v
    finally:
        v.m("rm", "-y", "-f", v.name)
        assert not v.dir.exists()
        assert not pids_of("", str(v.dir)), "an agent (or VM) of the removed machine is still running"


def test_agent_runs_and_forwards_published_ports(vm: VM) -> None:
    assert control.running(vm.dir), (vm.dir / control.LOG_FILE).read_text()
    ls = vm.m("ls", "--format", "{{.Name}} {{.Error}}")
    # no "agent not running" error (an engine slow to answer `ls`'s 1.5 s query on a loaded host is another matter)
    assert ls.stdout.startswith(vm.name) and "agent not running" not in ls.stdout, ls.stdout
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    vm.taken_port = taken.getsockname()[1]
    vm.taken = taken
    vm.web, vm.udp, vm.lo, vm.hn = free_port(), free_port(), free_port(), free_port()
    httpd = "mkdir -p /www && echo $0 > /www/index.html && exec httpd -f -p 8080 -h /www"
    vm.run("--name", "web", "-p", f"{vm.web}:8080", IMAGE, "sh", "-c", httpd, "web-body")
    vm.run("--name", "udp", "-p", f"{vm.udp}:9000/udp", IMAGE, "udpecho", "9000")
    vm.run("--name", "lo", "-p", f"127.0.0.1:{vm.lo}:8080", IMAGE, "sh", "-c", httpd, "lo-body")
    vm.run("--name", "taken", "-p", f"{vm.taken_port}:8080", IMAGE, "sh", "-c", httpd, "taken-body")
    vm.run("--name", "hn", "--network", "host", IMAGE, "sh", "-c", httpd.replace("8080", str(vm.hn)), "hn-body")

    assert http_get(vm.web) == "web-body\n"
    if vm.unrestricted:
        assert udp_echo(vm.udp) == b"echo:ping"
    assert http_get(vm.lo) == "lo-body\n"  # published on the guest's loopback: relayed over SSH
    assert http_get(vm.hn) == "hn-body\n"  # a --network host container's listener
    status = control.read_status(vm.dir)
    by_port = {f["host_port"]: f for f in status["forwards"]}
    assert by_port[vm.web]["path"] == "hypervisor" and by_port[vm.web]["containers"] == ["web"]
    if vm.unrestricted:
        assert by_port[vm.udp]["proto"] == "udp"
    else:
        failed = {f["host_port"]: f for f in status["failed"]}
        assert failed[vm.udp]["proto"] == "udp" and "restrict=on drops the guest's UDP" in failed[vm.udp]["error"]
    assert by_port[vm.lo]["path"] == "ssh" and by_port[vm.lo]["host_ip"] == "127.0.0.1"
    assert by_port[vm.hn]["containers"] == ["hn"]


def test_default_network_reaches_outside_without_being_contacted(vm: VM) -> None:
    """--DRIVER-restrict auto: the user network is not restricted, and the guest got a default route and a name
    server from it (read in the guest; nothing outside is contacted)."""
    if not vm.unrestricted:
        pytest.skip("PORTS_VM_RESTRICTED=1: the machine was made with restrict on")
    qemu = pids_of("qemu-system", str(vm.dir))
    assert len(qemu) == 1, qemu
    argv = Path(f"/proc/{qemu[0]}/cmdline").read_bytes().split(b"\0")
    netdev = [a.decode() for a in argv if a.startswith(b"user,id=n0")]
    assert netdev and "restrict=on" not in netdev[0] and "hostfwd=tcp:127.0.0.1:" in netdev[0], netdev
    res = vm.m("ssh", vm.name, "cat /proc/net/route /etc/resolv.conf")
    assert res.returncode == 0, res.stderr
    routes = [line.split() for line in res.stdout.splitlines() if line.startswith(("eth", "en"))]
    assert any(r[1] == "00000000" and r[2] != "00000000" for r in routes), res.stdout  # default via a gateway
    assert any(line.startswith("nameserver ") for line in res.stdout.splitlines()), res.stdout


def test_a_taken_host_port_is_reported(vm: VM) -> None:
    res = vm.m("ports", vm.name)
    assert res.returncode == 0, res.stderr
    line = f"NOT FORWARDED tcp 127.0.0.1:{vm.taken_port} (taken): host port 127.0.0.1:{vm.taken_port}/tcp is " \
           "already in use on this host"
    assert line in res.stdout, res.stdout
    assert f"127.0.0.1:{vm.taken_port}" in (vm.dir / control.LOG_FILE).read_text()
    # the port comes free: the agent forwards it after all (it retries)
    vm.taken.close()
    assert http_get(vm.taken_port) == "taken-body\n"


def test_forward_is_released_when_the_container_stops(vm: VM) -> None:
    assert vm.d("stop", "-t", "1", "web").returncode == 0
    assert wait(lambda: host_port_free("tcp", "127.0.0.1", vm.web)), "the forward of a stopped container stayed"
    assert vm.web not in {f["host_port"] for f in control.read_status(vm.dir)["forwards"]}


def test_restart_always_container_is_forwarded_after_machine_restart(vm: VM) -> None:
    vm.always = free_port()
    vm.run("--name", "always", "--restart", "always", "-p", f"{vm.always}:8080", IMAGE, "sh", "-c",
           "mkdir -p /www && echo always > /www/index.html && exec httpd -f -p 8080 -h /www")
    assert http_get(vm.always) == "always\n"
    old = control.agent_pid(vm.dir)
    res = vm.m("restart", vm.name)
    assert res.returncode == 0, res.stderr
    new = control.agent_pid(vm.dir)
    assert new and new != old
    assert http_get(vm.always, timeout=120) == "always\n"  # dockerd restarts it some time after boot


def test_start_restarts_a_dead_agent_and_stop_ends_it(vm: VM) -> None:
    pid = control.agent_pid(vm.dir)
    os.kill(pid, signal.SIGKILL)  # a crash: the VM goes on, its NAT rules stay behind
    assert wait(lambda: not control.running(vm.dir), 10)
    assert vm.m("status", vm.name).stdout.strip() == "Running"
    # ls shows one error per machine: an engine slow to answer its 1.5 s query (a loaded host) hides this one
    listed: list[str] = []
    assert wait(lambda: listed.append(vm.m("ls", "--format", "{{.Name}} {{.Error}}").stdout) or
                "agent not running" in listed[-1], 60), listed
    res = vm.m("start", vm.name)
    assert res.returncode == 0 and "started it again" in res.stderr, res.stderr
    assert control.running(vm.dir)
    assert http_get(vm.always) == "always\n"  # the new agent removed the leftover rule and added it again
    res = vm.m("stop", vm.name)
    assert res.returncode == 0, res.stderr
    assert not control.running(vm.dir)
    assert wait(lambda: host_port_free("tcp", "127.0.0.1", vm.always), 10)
    assert vm.m("ports", vm.name).returncode == 1
