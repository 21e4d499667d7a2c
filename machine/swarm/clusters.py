"""Docker Swarm clusters from machines: Docker's own clustering, driven over SSH.

Node network. Swarm needs the nodes to reach each other (2377/tcp management, 7946/tcp+udp gossip,
4789/udp VXLAN for overlay networks) on addresses that do not change. Each machine's first NIC is
qemu user-mode networking: every VM sees itself as 10.0.2.15 behind its own NAT, so those addresses
cannot carry a cluster. Each cluster therefore gets its own userspace Ethernet switch (VDE's
`vde_switch`, see machine.swarm.clusternet) and every node a second NIC on it, with a static address from the
cluster's private /24 (10.77.N.0/24) that the seed's network-config sets (matched by MAC). The host never
has an address on that network: nothing on the host's network stack is touched, no root or bridge is
needed, and test traffic stays inside the VMs. Nodes advertise and listen on their cluster address;
the engine API the host uses stays on the first NIC's forwarded port.

`create_cluster` plans every member first (addresses, MACs, the switch), then creates the machines in
parallel and pipelines the swarm: the first manager runs `docker swarm init` as soon as it is up, the
others join the moment they are up and the manager is initialised. Removing a worker drains it first
(its tasks move to other nodes). Images can be loaded on every node (no registry needed).
"""

from __future__ import annotations

import concurrent.futures as futures
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from machine import orchestrator
from machine.errors import ClusterError, MachineError, UsageError
from machine.names import validate_name
from machine.progress import Progress
from machine.store import Store
from machine.swarm import clusternet, nodecommands
from machine.swarm.clusternet import forget_member, plan_member  # the membership records (create.py uses them)

JOIN_WAIT = 600.0  # how long a node that is up waits for the first manager to initialise the swarm


# -- membership --------------------------------------------------------------------------------


def join_on_create(store: Store, cfg: Any, progress: Progress) -> None:
    """After `machine create --swarm-manager/--swarm-join CLUSTER`: init or join the swarm."""
    cluster = clusternet.load(store, cfg.swarm["cluster"])
    member = cluster.members[cfg.name]
    lead = _live_manager(store, cluster, exclude=cfg.name)
    with progress.step(f"Joining {cfg.name!r} to swarm {cluster.name!r} as {member['role']}"):
        if not lead:
            if member["role"] != "manager":
                raise UsageError(f"Cluster {cluster.name!r} has no manager yet",
                                 f"Create one first: machine create --swarm-manager {cluster.name} NAME")
            nodecommands.init_swarm(store, cfg.name, member["address"])
            lead = cfg.name
        else:
            token = nodecommands.join_token(store, lead, member["role"])
            nodecommands.join_swarm(store, cfg.name, token, member["address"], cluster.members[lead]["address"])
        nodecommands.label_nodes(store, lead, cluster.name, {cfg.name: member["role"]})
        clusternet.mark_joined(store, cluster.name, [cfg.name])


# -- cluster commands -----------------------------------------------------------------------------


class _Swarming:
    """Creates nodes in parallel; each joins as soon as it is up and the swarm has been initialised."""

    def __init__(self, store: Store, cluster: str, progress: Progress, debug: bool, made: list[str]) -> None:
        self.store, self.cluster, self.progress, self.debug, self.made = store, cluster, progress, debug, made
        self.ready = threading.Event()  # set once tokens are known (or the lead failed: see self.failed)
        self.failed = threading.Event()
        self.tokens: dict[str, str] = {}
        self.lead = ""
        self.lead_address = ""
        self.manager_joins = threading.Lock()  # raft: one manager joins at a time
        self.reload_images = False  # load what `swarm load` loaded before a node joins (scale)

    def use_existing(self, lead: str) -> None:
        self.lead = lead
        self.lead_address = clusternet.load(self.store, self.cluster).members[lead]["address"]
        self.tokens = {"worker": nodecommands.join_token(self.store, lead, "worker")}
        self.reload_images = True
        self.ready.set()

    def node(self, req: Any, role: str, initialise: bool) -> None:
        name = req.name
        try:
            started = time.monotonic()
            orchestrator.create(self.store, req, Progress(quiet=True), debug=self.debug)
            self.made.append(name)
            self.progress.info(f"Created {role} {name!r} ({time.monotonic() - started:.1f}s)")
            address = req.swarm["address"]
            if initialise:  # first: the others wait for it
                self.tokens = {"worker": nodecommands.init_swarm(self.store, name, address)}
                self.lead, self.lead_address = name, address
                self.progress.info(f"Swarm initialised on {name!r} ({time.monotonic() - started:.1f}s)")
                self.ready.set()
            if self.reload_images:  # before a node joins: no task lands on it without its images
                _reload_images(self.store, self.cluster, [name], self.progress)
            if initialise:
                return
            deadline = time.monotonic() + JOIN_WAIT
            while not self.ready.wait(0.2):
                if self.failed.is_set() or time.monotonic() > deadline:
                    return
            if role == "manager":
                with self.manager_joins:  # raft: one manager joins at a time; its token only when one is needed
                    if "manager" not in self.tokens:
                        self.tokens["manager"] = nodecommands.join_token(self.store, self.lead, "manager")
                    nodecommands.join_swarm(self.store, name, self.tokens["manager"], address, self.lead_address)
            else:
                nodecommands.join_swarm(self.store, name, self.tokens["worker"], address, self.lead_address)
            self.progress.info(f"{name!r} joined as {role} ({time.monotonic() - started:.1f}s)")
        except BaseException:
            self.failed.set()
            raise

    def run(self, nodes: list[tuple[Any, str]], step: str) -> None:
        """nodes: (request, role); the first node initialises the swarm unless use_existing was called."""
        with self.progress.step(step):
            with futures.ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
                jobs = [pool.submit(self.node, req, role, i == 0 and not self.ready.is_set())
                        for i, (req, role) in enumerate(nodes)]
                errors = [j.exception() for j in jobs if j.exception()]
            if errors:
                raise errors[0]  # type: ignore[misc]
        clusternet.mark_joined(self.store, self.cluster, [req.name for req, _ in nodes])


def _plan(store: Store, cluster: str, nodes: list[tuple[str, str]],
          make_request: Callable[[str], Any]) -> list[tuple[Any, str]]:
    """Reserve every member's address before any machine is made. Nodes carry their cluster and role as
    engine labels (daemon.json, from the seed): placement constraints can use `engine.labels.machine.role`
    and no `docker node update` round trip is needed."""
    planned = []
    for node, role in nodes:
        req = make_request(node)
        req.swarm = plan_member(store, cluster, node, role, req.driver)
        own = [x for x in req.engine.get("labels") or [] if not x.startswith(("machine.cluster=", "machine.role="))]
        req.engine["labels"] = [*own, f"machine.cluster={cluster}", f"machine.role={role}"]
        planned.append((req, role))
    return planned


def create_cluster(store: Store, name: str, managers: int, workers: int, make_request: Callable[[str], Any],
                   progress: Progress, debug: bool = False, images: Sequence[tuple[Path, str]] = ()) -> list[str]:
    """Create a cluster of `managers` + `workers` machines named NAME-mN / NAME-wN, in parallel. `images`
    (tarball, tag or "") are loaded on each node as soon as it is up, before it joins (like `load_image`)."""
    for tarball, _ in images:
        if not Path(tarball).is_file():
            raise UsageError(f"Image tarball {tarball} not found", "Give the path of a docker save or rootfs tarball.")
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
        planned = _plan(store, name, nodes, make_request)
        if images:
            _remember_images(store, name, [(Path(t).resolve(), tag) for t, tag in images])
        swarming = _Swarming(store, name, progress, debug, made)
        swarming.reload_images = bool(images)
        swarming.run(planned, f"Creating {len(nodes)} machines in parallel")
    except BaseException:
        progress.info(f"Swarm create failed; removing the machines of {name!r}")
        remove_cluster(store, name, progress, debug=debug)
        raise
    return made


def _live_manager(store: Store, cluster: clusternet.Cluster, exclude: str = "") -> str | None:
    for m in cluster.managers():
        if m != exclude and store.exists(m) and cluster.members[m].get("joined"):
            return m
    return None


def drain_and_remove(store: Store, name: str, node: str, progress: Progress, *, force: bool = False,
                     debug: bool = False, drain_timeout: float = 180.0) -> None:
    """Drain `node` (its tasks move elsewhere), make it leave, drop it from the swarm, remove it."""
    cluster = clusternet.load(store, name)
    manager = _live_manager(store, cluster, exclude=node)
    q = shlex.quote(node)
    try:
        if manager and store.exists(node):
            with progress.step(f"Draining {node!r}"):
                nodecommands.node_run(store, manager, f"docker node update --availability drain {q} >/dev/null")
                ok = nodecommands.node_run(store, manager, nodecommands.wait_drained_script(node, drain_timeout),
                                           check=False, timeout=drain_timeout + 60)
                if "drained" not in ok:
                    raise ClusterError(f"The tasks of {node!r} did not move to other nodes within "
                                       f"{drain_timeout:.0f} s", "Check 'docker service ps' on a manager (placement "
                                       "constraints?); use -f to remove it anyway.")
            with progress.step(f"Removing {node!r} from the swarm"):
                nodecommands.node_run(store, node, "docker swarm leave --force", check=False, timeout=30)
                # a node that left shows as down after a moment; until then `node rm` refuses without --force
                nodecommands.node_run(store, manager, f"docker node rm --force {q}", check=False)
        elif store.exists(node):
            nodecommands.node_run(store, node, "docker swarm leave --force", check=False, timeout=30)
    except MachineError:
        if not force:
            raise
    if store.exists(node) or store.machine_dir(node).exists():
        orchestrator.remove(store, node, progress, force=True, debug=debug)
    forget_member(store, name, node)


def remove_cluster(store: Store, name: str, progress: Progress, *, force: bool = False, debug: bool = False) -> None:
    """Remove every machine of the cluster (in parallel), stop its switch, delete the cluster record.
    Nodes do not leave the swarm first: the whole swarm goes away with them."""
    cluster = clusternet.load(store, name)
    members = [n for n in cluster.members if store.machine_dir(n).exists()]

    def remove(node: str) -> None:
        orchestrator.remove(store, node, progress, force=True, debug=debug)

    errors: list[BaseException] = []
    with futures.ThreadPoolExecutor(max_workers=max(1, len(members))) as pool:
        for job in [pool.submit(remove, n) for n in members]:
            if job.exception():
                errors.append(job.exception())  # type: ignore[arg-type]
    if errors and not force:
        raise errors[0]
    clusternet.stop_switch(store, name)
    shutil.rmtree(clusternet.cluster_dir(store, name), ignore_errors=True)
    clusternet.lock_path(store, name).unlink(missing_ok=True)


def scale(store: Store, name: str, workers: int, make_request: Callable[[str], Any], progress: Progress,
          debug: bool = False) -> None:
    """Add workers (created in parallel, joined as each comes up) or remove the newest ones (drained first)."""
    cluster = clusternet.load(store, name)
    current = sorted(cluster.workers(), key=_worker_number)
    if workers > len(current):
        lead = _live_manager(store, cluster)
        if not lead:
            raise ClusterError(f"Cluster {name!r} has no reachable manager", "Check 'machine swarm ls'.")
        used = {_worker_number(n) for n in current}
        numbers = [i for i in range(1, workers + len(used) + 1) if i not in used][:workers - len(current)]
        made: list[str] = []
        planned = _plan(store, name, [(f"{name}-w{i}", "worker") for i in numbers], make_request)
        swarming = _Swarming(store, name, progress, debug, made)
        swarming.use_existing(lead)
        try:
            swarming.run(planned, f"Adding {len(planned)} workers")
        except BaseException:
            for req, _ in planned:
                if store.machine_dir(req.name).exists():
                    orchestrator.remove(store, req.name, progress, force=True, debug=debug)
                forget_member(store, name, req.name)
            raise
    else:
        for node in reversed(current[workers:]):
            drain_and_remove(store, name, node, progress, debug=debug)


def _worker_number(node: str) -> int:
    tail = node.rsplit("-w", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def load_image(store: Store, name: str, tarball: Path, progress: Progress, tag: str | None = None,
               nodes: Sequence[str] | None = None) -> None:
    """Put an image on every node of the cluster (or on `nodes`), in parallel: `docker load` of a
    `docker save` archive, or with `tag`, `docker import` of a root filesystem tarball. The load is
    remembered (path and tag) so that `scale` loads it on workers it adds, while the file exists."""
    tarball = Path(tarball).resolve()
    data = tarball.read_bytes()
    command = f"docker import - {shlex.quote(tag)} >/dev/null" if tag else "docker load >/dev/null"
    targets = [n for n in (nodes or clusternet.load(store, name).members) if store.exists(n)]
    with progress.step(f"Loading {tarball.name} on {len(targets)} node(s)"):
        with futures.ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            for j in [pool.submit(nodecommands.node_run, store, n, command, input=data) for n in targets]:
                j.result()
    if nodes is None:
        _remember_images(store, name, [(tarball, tag or "")])


def _remember_images(store: Store, name: str, images: Sequence[tuple[Path, str]]) -> None:
    with clusternet.lock(store, name):
        cluster = clusternet.load(store, name)
        for tarball, tag in images:
            entry = {"path": str(tarball), "tag": tag}
            cluster.images = [i for i in cluster.images if i != entry] + [entry]
        clusternet.save(store, cluster)


def _reload_images(store: Store, name: str, nodes: Sequence[str], progress: Progress) -> None:
    for image in clusternet.load(store, name).images:
        if Path(image["path"]).is_file():
            load_image(store, name, Path(image["path"]), progress, tag=image["tag"] or None, nodes=nodes)
        else:
            progress.warn(f"{image['path']} is gone: not loaded on {', '.join(nodes)}")


def describe(store: Store) -> list[dict[str, Any]]:
    rows = []
    for name in clusternet.names(store):
        c = clusternet.load(store, name)
        rows.append({"Name": c.name, "Managers": c.managers(), "Workers": c.workers(), "Subnet": c.subnet,
                     "Switch": "running" if clusternet.switch_pid(store, name) else "stopped"})
    return rows
