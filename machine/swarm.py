"""Docker Swarm clusters from machines: Docker's own clustering, driven over SSH.

`create_cluster` makes the machines in parallel (each with a second NIC on the cluster's
userspace switch, see machine.clusternet), runs `docker swarm init` on the first manager with its
cluster address as advertise address, joins the others with the right tokens and labels the
nodes. Removing a worker drains it first. Images can be loaded on every node (no registry needed).
"""

from __future__ import annotations

import concurrent.futures as futures
import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import clusternet, orchestrator
from machine.errors import MachineError, UsageError
from machine.names import validate_name
from machine.progress import Progress
from machine.store import Store

SWARM_PORT = 2377


# -- running docker in a node -------------------------------------------------------------------


def node_run(store: Store, name: str, command: str, *, input: bytes | None = None, check: bool = True,
             timeout: float = 120.0) -> str:
    """Run a shell command in machine `name` over SSH (pinned host key) and return its stdout."""
    from machine.provision.remote import open_session

    cfg = store.load(name)
    driver = orchestrator.driver_for(store, cfg)
    with open_session(store, cfg, driver, timeout=timeout) as session:
        res = session.run(command, check=check, input=input)
    return res.stdout


# -- membership planning ------------------------------------------------------------------------


def plan_member(store: Store, cluster_name: str, machine: str, role: str, driver: str) -> dict[str, Any]:
    """Reserve an address on the cluster network for `machine` (creating the cluster record and
    starting its switch if needed); returns what goes into the machine's `swarm` config."""
    validate_name(cluster_name)
    try:
        cluster = clusternet.load(store, cluster_name)
    except MachineError:
        if role != "manager":
            raise UsageError(f"Swarm cluster {cluster_name!r} does not exist",
                             f"Create it first: machine swarm create {cluster_name}, or machine create "
                             f"--swarm-manager {cluster_name} NAME") from None
        cluster = clusternet.new_cluster(store, cluster_name, driver)
    if machine in cluster.members:
        raise UsageError(f"Machine {machine!r} is already in cluster {cluster_name!r}", "Pick another name.")
    address = cluster.next_address()
    cluster.members[machine] = {"role": role, "address": address, "joined": False}
    clusternet.save(store, cluster)
    switch = clusternet.ensure_switch(store, cluster_name) if driver == "qemu" else None
    return {"cluster": cluster_name, "role": role, "address": address,
            "prefix": cluster.network.prefixlen, "mac": clusternet.mac_for(machine),
            "switch": str(switch) if switch else ""}


def forget_member(store: Store, cluster_name: str, machine: str) -> None:
    try:
        cluster = clusternet.load(store, cluster_name)
    except MachineError:
        return
    cluster.members.pop(machine, None)
    clusternet.save(store, cluster)


# -- joining -------------------------------------------------------------------------------------


def _swarm_info(store: Store, name: str) -> dict[str, Any]:
    out = node_run(store, name, "docker info --format '{{json .Swarm}}'")
    return json.loads(out.strip() or "{}")


def _init(store: Store, manager: str, address: str) -> None:
    if _swarm_info(store, manager).get("LocalNodeState") == "active":
        return
    node_run(store, manager, f"docker swarm init --advertise-addr {address} --listen-addr {address}:{SWARM_PORT}")


def _join(store: Store, node: str, role: str, address: str, manager: str, manager_address: str) -> None:
    if _swarm_info(store, node).get("LocalNodeState") == "active":
        return
    token = node_run(store, manager, f"docker swarm join-token -q {shlex.quote(role)}").strip()
    node_run(store, node, f"docker swarm join --token {shlex.quote(token)} --advertise-addr {address} "
                          f"--listen-addr {address}:{SWARM_PORT} {manager_address}:{SWARM_PORT}")


def _label(store: Store, manager: str, node: str, cluster: str, role: str) -> None:
    node_run(store, manager, f"docker node update --label-add machine.cluster={shlex.quote(cluster)} "
                             f"--label-add machine.role={role} --label-add machine.name={shlex.quote(node)} "
                             f"{shlex.quote(node)}")


def join_on_create(store: Store, cfg: Any, progress: Progress) -> None:
    """After `machine create --swarm-manager/--swarm-join CLUSTER`: init or join the swarm."""
    cluster = clusternet.load(store, cfg.swarm["cluster"])
    member = cluster.members[cfg.name]
    managers = [m for m in cluster.managers() if cluster.members[m].get("joined") and m != cfg.name]
    with progress.step(f"Joining {cfg.name!r} to swarm {cluster.name!r} as {member['role']}"):
        if not managers:
            if member["role"] != "manager":
                raise UsageError(f"Cluster {cluster.name!r} has no manager yet",
                                 f"Create one first: machine create --swarm-manager {cluster.name} NAME")
            _init(store, cfg.name, member["address"])
            lead = cfg.name
        else:
            lead = managers[0]
            _join(store, cfg.name, member["role"], member["address"], lead, cluster.members[lead]["address"])
        _label(store, lead, cfg.name, cluster.name, member["role"])
        cluster = clusternet.load(store, cluster.name)
        cluster.members[cfg.name]["joined"] = True
        clusternet.save(store, cluster)


# -- cluster commands -----------------------------------------------------------------------------


def create_cluster(store: Store, name: str, managers: int, workers: int, make_request: Callable[[str], Any],
                   progress: Progress, debug: bool = False) -> list[str]:
    """Create a cluster of `managers` + `workers` machines named NAME-mN / NAME-wN, in parallel."""
    validate_name(name)
    if managers < 1:
        raise UsageError("A swarm needs at least one manager", "Use --managers 1 or more.")
    if name in clusternet.names(store):
        raise UsageError(f"Swarm cluster {name!r} already exists", f"Remove it first: machine swarm rm {name}")
    nodes = [(f"{name}-m{i}", "manager") for i in range(1, managers + 1)]
    nodes += [(f"{name}-w{i}", "worker") for i in range(1, workers + 1)]
    for node, _ in nodes:
        if store.exists(node):
            raise UsageError(f"Machine {node!r} already exists",
                             f"Remove it, or choose another cluster name than {name!r}.")
    made: list[str] = []
    try:
        _create_nodes(store, name, nodes, make_request, progress, debug, made)
        lead = nodes[0][0]
        cluster = clusternet.load(store, name)
        with progress.step(f"Initialising swarm on {lead!r}"):
            _init(store, lead, cluster.members[lead]["address"])
        _join_all(store, name, [n for n, _ in nodes[1:]], lead, progress)
        with progress.step("Labelling nodes"):
            for node, role in nodes:
                _label(store, lead, node, name, role)
    except BaseException:
        progress.info(f"Swarm create failed; removing the machines of {name!r}")
        remove_cluster(store, name, progress, force=True, debug=debug)
        raise
    return made


def _create_nodes(store: Store, cluster: str, nodes: list[tuple[str, str]], make_request: Callable[[str], Any],
                  progress: Progress, debug: bool, made: list[str]) -> None:
    quiet = Progress(quiet=True)

    def one(node: str, role: str) -> str:
        req = make_request(node)
        req.swarm = plan_member(store, cluster, node, role, req.driver)
        started = time.monotonic()
        orchestrator.create(store, req, quiet, debug=debug)
        made.append(node)
        progress.info(f"Created {role} {node!r} ({time.monotonic() - started:.1f}s)")
        return node

    with progress.step(f"Creating {len(nodes)} machines in parallel"):
        with futures.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            jobs = [pool.submit(one, n, r) for n, r in nodes]
            errors = [j.exception() for j in jobs if j.exception()]
        if errors:
            raise errors[0]  # type: ignore[misc]


def _join_all(store: Store, name: str, nodes: list[str], lead: str, progress: Progress) -> None:
    cluster = clusternet.load(store, name)
    lead_addr = cluster.members[lead]["address"]
    with progress.step(f"Joining {len(nodes)} nodes"):
        with futures.ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            jobs = [pool.submit(_join, store, n, cluster.members[n]["role"], cluster.members[n]["address"], lead,
                                lead_addr) for n in nodes]
            for j in jobs:
                j.result()
    cluster = clusternet.load(store, name)
    for n in [lead, *nodes]:
        cluster.members[n]["joined"] = True
    clusternet.save(store, cluster)


def _live_manager(store: Store, cluster: clusternet.Cluster, exclude: str = "") -> str | None:
    for m in cluster.managers():
        if m != exclude and store.exists(m) and cluster.members[m].get("joined"):
            return m
    return None


def drain_and_remove(store: Store, name: str, node: str, progress: Progress, *, force: bool = False,
                     debug: bool = False, drain_timeout: float = 120.0) -> None:
    """Drain `node` (its tasks move elsewhere), make it leave, drop it from the swarm, remove it."""
    cluster = clusternet.load(store, name)
    manager = _live_manager(store, cluster, exclude=node)
    try:
        if manager and store.exists(node):
            with progress.step(f"Draining {node!r}"):
                node_run(store, manager, f"docker node update --availability drain {shlex.quote(node)}")
                deadline = time.monotonic() + drain_timeout
                while time.monotonic() < deadline:
                    out = node_run(store, manager, f"docker node ps {shlex.quote(node)} --filter desired-state=running "
                                                   "--format '{{.ID}}'", check=False)
                    if not out.strip():
                        break
                    time.sleep(1)
            node_run(store, node, "docker swarm leave --force", check=False)
            node_run(store, manager, f"docker node rm --force {shlex.quote(node)}", check=False)
        elif store.exists(node):
            node_run(store, node, "docker swarm leave --force", check=False)
    except MachineError:
        if not force:
            raise
    if store.exists(node) or store.machine_dir(node).exists():
        orchestrator.remove(store, node, progress, force=True, debug=debug)
    forget_member(store, name, node)


def remove_cluster(store: Store, name: str, progress: Progress, *, force: bool = False, debug: bool = False) -> None:
    """Leave (workers first), remove every machine, stop the switch, delete the cluster record."""
    cluster = clusternet.load(store, name)
    for node in cluster.workers() + list(reversed(cluster.managers())):
        try:
            if store.exists(node):
                node_run(store, node, "docker swarm leave --force", check=False, timeout=30)
        except MachineError as e:
            progress.warn(f"{node!r} could not leave the swarm: {e}")
        if store.machine_dir(node).exists():
            orchestrator.remove(store, node, progress, force=True, debug=debug)
    clusternet.stop_switch(store, name)
    import shutil

    shutil.rmtree(clusternet.cluster_dir(store, name), ignore_errors=True)


def scale(store: Store, name: str, workers: int, make_request: Callable[[str], Any], progress: Progress,
          debug: bool = False) -> None:
    cluster = clusternet.load(store, name)
    current = sorted(cluster.workers(), key=lambda n: int(n.rsplit("-w", 1)[-1]) if "-w" in n else 0)
    if workers > len(current):
        used = {int(n.rsplit("-w", 1)[-1]) for n in current if n.rsplit("-w", 1)[-1].isdigit()}
        new = []
        i = 1
        while len(new) < workers - len(current):
            if i not in used:
                new.append((f"{name}-w{i}", "worker"))
            i += 1
        made: list[str] = []
        _create_nodes(store, name, new, make_request, progress, debug, made)
        lead = _live_manager(store, clusternet.load(store, name))
        if not lead:
            raise MachineError(f"Cluster {name!r} has no reachable manager", "Check 'machine swarm ls'.")
        _join_all(store, name, [n for n, _ in new], lead, progress)
        for n, _ in new:
            _label(store, lead, n, name, "worker")
    else:
        for node in reversed(current[workers:]):
            drain_and_remove(store, name, node, progress, debug=debug)


def load_image(store: Store, name: str, tarball: Path, progress: Progress, tag: str | None = None) -> None:
    """Put an image on every node of the cluster, in parallel: `docker load` of a `docker save`
    archive, or with `tag`, `docker import` of a root filesystem tarball."""
    data = tarball.read_bytes()
    command = f"docker import - {shlex.quote(tag)}" if tag else "docker load"
    nodes = list(clusternet.load(store, name).members)
    with progress.step(f"Loading {tarball.name} on {len(nodes)} nodes"):
        with futures.ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            for j in [pool.submit(node_run, store, n, command, input=data) for n in nodes]:
                j.result()


def describe(store: Store) -> list[dict[str, Any]]:
    rows = []
    for name in clusternet.names(store):
        c = clusternet.load(store, name)
        rows.append({"Name": c.name, "Managers": c.managers(), "Workers": c.workers(), "Subnet": c.subnet,
                     "Switch": "running" if clusternet.switch_pid(store, name) else "stopped"})
    return rows
