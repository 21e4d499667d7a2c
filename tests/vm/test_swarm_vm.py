"""A real Swarm: `machine swarm create` of 3 qemu TCG VMs (1 vCPU, 512 MiB) on a VDE cluster switch, an image
loaded with `swarm load` (no registry), a 3-replica service spread over the 3 nodes, its VIP queried over an
overlay network from a worker, `swarm scale --workers 1` draining a worker, `machine create --swarm-join` adding a
machine to the cluster, and `swarm rm` leaving nothing.

Skips when qemu, vde_switch, the docker CLI, busybox-static or the built machine OS is missing. Takes 5-10
minutes on 2 cores; run it alone (the VMs need the CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bench.rootfs import write_busybox_rootfs
from machine.images.catalogue import machine_os_dir

pytestmark = [pytest.mark.vm, pytest.mark.slow]

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "nc", "hostname", "echo", "sleep", "cat")
CREATE = ("-d", "qemu", "--qemu-cpus", "1", "--qemu-memory", "512")


def _skip_reason() -> str | None:
    for tool in ("qemu-system-x86_64", "vde_switch", "docker"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not Path(BUSYBOX).is_file():
        return "busybox-static is not installed (the test image is made from /bin/busybox)"
    d = machine_os_dir()
    if not ((d / "vmlinuz").is_file() and (d / "initrd.img").is_file()):
        return f"the machine OS is not built in {d} (python3 isos/build.py, or set MACHINE_OS_DIR)"
    return None


def machine(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "machine", *args], capture_output=True, text=True, timeout=timeout)


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, f"{res.args}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def docker_env(name: str) -> dict[str, str]:
    env = dict(os.environ)
    for line in ok(machine("env", name)).splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip('"')
    return env


def docker(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    return ok(subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout))


def rootfs_tar(path: Path) -> Path:
    return write_busybox_rootfs(path, APPLETS)


def running_tasks(env: dict[str, str], service: str) -> list[tuple[str, str]]:
    out = docker(env, "service", "ps", service, "-f", "desired-state=running",
                 "--format", "{{.Node}}\t{{.CurrentState}}")
    return [tuple(line.split("\t", 1)) for line in out.splitlines() if line.strip()]  # type: ignore[misc]


def wait_running(env: dict[str, str], service: str, replicas: int, timeout: float = 420) -> list[str]:
    """Wait until `replicas` tasks run; return their nodes."""
    deadline = time.monotonic() + timeout
    tasks: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        tasks = running_tasks(env, service)
        if len(tasks) == replicas and all(state.startswith("Running") for _, state in tasks):
            return [node for node, _ in tasks]
        time.sleep(2)
    raise AssertionError(f"{service} did not reach {replicas} running tasks: {tasks}")


def our_processes(marker: str) -> list[str]:
    """Command lines of live (non-zombie) processes that mention `marker` (our store path)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z" and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def test_swarm_service_overlay_scale_rm(store_root: Path, tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = f"sw{uuid.uuid4().hex[:4]}"
    lead, w1, w2 = f"{cluster}-m1", f"{cluster}-w1", f"{cluster}-w2"
    try:
        # -- create: 1 manager + 2 workers, each with a static address on the cluster switch
        ok(machine("swarm", "create", cluster, "--managers", "1", "--workers", "2", *CREATE, timeout=1200))
        table = ok(machine("ls"))
        swarm_col = {line.split()[0]: line for line in table.splitlines()[1:]}
        assert f"{cluster} (manager)" in swarm_col[lead]
        assert cluster in swarm_col[w1] and "(manager)" not in swarm_col[w1]
        info = json.loads(ok(machine("swarm", "ls", "--format", "json")))
        assert [(c["Name"], c["Managers"], sorted(c["Workers"]), c["Switch"]) for c in info] == \
            [(cluster, [lead], [w1, w2], "running")]
        subnet = info[0]["Subnet"].rsplit(".", 1)[0]  # e.g. 10.77.1
        addr = ok(machine("ssh", w1, "ip -4 -o addr show"))
        assert f"inet {subnet}.11/24" in addr, addr

        m_env = docker_env(lead)
        nodes = docker(m_env, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}").splitlines()
        assert sorted(nodes) == sorted([f"{lead} Ready Leader", f"{w1} Ready ", f"{w2} Ready "]), nodes
        advertised = docker(m_env, "node", "inspect", w2, "--format", "{{.Status.Addr}}").strip()
        assert advertised == f"{subnet}.12", advertised
        labels = json.loads(docker(m_env, "node", "inspect", w2, "--format", "{{json .Description.Engine.Labels}}"))
        assert labels["machine.cluster"] == cluster and labels["machine.role"] == "worker", labels

        # -- an image without a registry, and a 3-replica service on an overlay network
        ok(machine("swarm", "load", cluster, str(rootfs_tar(tmp_path / "rootfs.tar")), "--tag", "bb:1"))
        docker(m_env, "network", "create", "-d", "overlay", "--attachable", "net")
        docker(m_env, "service", "create", "-d", "--name", "echo", "--replicas", "3", "--network", "net",
               "--hostname", "{{.Node.Hostname}}", "--stop-grace-period", "1s",
               "bb:1", "nc", "-ll", "-p", "8080", "-e", "hostname")
        placed = wait_running(m_env, "echo", 3)
        assert sorted(placed) == sorted([lead, w1, w2]), placed  # spread: one task per node

        # -- the service VIP answers over the overlay, from a worker, with tasks on other nodes
        w_env = docker_env(w1)
        task = docker(w_env, "ps", "-q", "-f", "label=com.docker.swarm.service.name=echo").split()[0]
        vips = json.loads(docker(m_env, "service", "inspect", "echo", "--format", "{{json .Endpoint.VirtualIPs}}"))
        vip = vips[0]["Addr"].split("/")[0]
        answers = set()
        for target in ("echo", vip, "echo", vip, "echo", vip):
            out = docker(w_env, "exec", task, "nc", "-w", "5", target, "8080", timeout=60).strip()
            assert out in (lead, w1, w2), out
            answers.add(out)
            if answers - {w1}:
                break
        assert answers - {w1}, f"only {w1} answered: the VIP did not reach another node"

        # -- scale down: w2 drains (its task moves), leaves, is removed
        ok(machine("swarm", "scale", cluster, "--workers", "1", timeout=600))
        nodes = docker(m_env, "node", "ls", "--format", "{{.Hostname}}").split()
        assert sorted(nodes) == sorted([lead, w1]), nodes
        placed = wait_running(m_env, "echo", 3, timeout=120)
        assert w2 not in placed and set(placed) <= {lead, w1}, placed
        assert w2 not in ok(machine("ls", "-q")).split()
        assert not our_processes(str(store_root / "machines" / w2))

        # -- `machine create --swarm-join`: a machine made on its own joins the existing cluster
        extra = f"{cluster}-x"
        ok(machine("create", *CREATE, "--swarm-join", cluster, extra, timeout=900))
        nodes = docker(m_env, "node", "ls", "--format", "{{.Hostname}} {{.Status}}").splitlines()
        assert f"{extra} Ready" in nodes, nodes
        labels = json.loads(docker(m_env, "node", "inspect", extra, "--format", "{{json .Spec.Labels}}"))
        assert labels == {"machine.cluster": cluster, "machine.role": "worker", "machine.name": extra}, labels
        assert docker(m_env, "node", "inspect", extra, "--format", "{{.Status.Addr}}").strip() == f"{subnet}.12"
    finally:
        res = machine("swarm", "rm", "-y", "-f", cluster, timeout=300)
    ok(res)
    assert not our_processes(str(store_root)), "qemu or vde_switch processes left behind"
    assert not any((store_root / "machines").glob(f"{cluster}-*")), "machine dirs left behind"
    assert not (store_root / "swarms" / cluster).exists(), "cluster dir left behind"
    assert json.loads(ok(machine("swarm", "ls", "--format", "json"))) == []
