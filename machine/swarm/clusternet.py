"""Node-to-node networks for Swarm clusters that need no host addresses.

Each cluster gets a userspace Ethernet switch (VDE's `vde_switch`, from Debian's vde2 package):
a unix socket directory the VMs' second NIC plugs into (`-netdev vde,sock=...`). The VMs use
private addresses on it that only they see; the host never gets an address on that network, so
nothing on the host's own network stack is touched. The switch is a process of ours, started on
demand and stopped when the cluster is removed. For real users on libvirt, a libvirt network
does the same job.

Cluster state lives in `<store>/swarms/<cluster>/cluster.json`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from machine import process, registry
from machine.atomicfile import ensure_dir, write_atomic
from machine.driver import CLUSTER_NONE, CLUSTER_VDE
from machine.errors import ConfigError, HostNotUsable, NotFound, UsageError
from machine.filelock import FileLock
from machine.names import validate_name
from machine.store import Store

BASE_NET = ipaddress.ip_network("10.77.0.0/16")


@dataclass
class Cluster:
    name: str
    subnet: str  # e.g. 10.77.3.0/24
    members: dict[str, dict] = field(default_factory=dict)  # machine -> {role, address}
    driver: str = "qemu"
    images: list[dict] = field(default_factory=list)  # what `swarm load` loaded: {path, tag}, for new nodes

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    def managers(self) -> list[str]:
        return [n for n, m in self.members.items() if m.get("role") == "manager"]

    def workers(self) -> list[str]:
        return [n for n, m in self.members.items() if m.get("role") == "worker"]

    def next_address(self) -> str:
        used = {m.get("address") for m in self.members.values()}
        for host in self.network.hosts():
            if host.packed[-1] < 10:
                continue
            if str(host) not in used:
                return str(host)
        raise ConfigError(f"Cluster {self.name!r} has no free address in {self.subnet}", "Remove unused nodes.")


def cluster_dir(store: Store, name: str) -> Path:
    return store.root / "swarms" / validate_name(name)


def load(store: Store, name: str) -> Cluster:
    path = cluster_dir(store, name) / "cluster.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"Swarm cluster {name!r} does not exist", "See 'machine swarm ls'.") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"Cluster file {path} is corrupt: {e.msg}", "Remove it with 'machine swarm rm -f'.") from None
    return Cluster(**data)


def save(store: Store, cluster: Cluster) -> None:
    write_atomic(ensure_dir(cluster_dir(store, cluster.name)) / "cluster.json", json.dumps(asdict(cluster), indent=2))


def lock_path(store: Store, name: str) -> Path:
    return store.root / "swarms" / f".{validate_name(name)}.lock"


def lock(store: Store, name: str) -> FileLock:
    """Held while a cluster record is read, changed and written (threads and processes)."""
    ensure_dir(store.root / "swarms")
    return FileLock(lock_path(store, name), timeout=60, what=f"Swarm cluster {name!r}")


def names(store: Store) -> list[str]:
    root = store.root / "swarms"
    return sorted(p.name for p in root.iterdir() if (p / "cluster.json").exists()) if root.is_dir() else []


def new_cluster(store: Store, name: str, driver: str) -> Cluster:
    """Allocate a /24 for a new cluster that no other cluster of this store uses."""
    taken = {load(store, n).subnet for n in names(store)}
    for subnet in BASE_NET.subnets(new_prefix=24):
        if str(subnet) not in taken and subnet.network_address.packed[2] != 0:
            return Cluster(name=name, subnet=str(subnet), driver=driver)
    raise ConfigError("No free cluster subnet left", "Remove clusters you no longer use.")


def mac_for(machine: str) -> str:
    """A stable, locally administered MAC for a machine's cluster NIC."""
    digest = hashlib.sha256(machine.encode()).digest()
    return "52:54:01:" + ":".join(f"{b:02x}" for b in digest[:3])


# -- membership planning ------------------------------------------------------------------------


def plan_member(store: Store, cluster_name: str, machine: str, role: str, driver: str) -> dict[str, Any]:
    """Reserve an address on the cluster network for `machine` (creating the cluster record and
    starting its switch if needed); returns what goes into the machine's `swarm` config."""
    validate_name(cluster_name)
    nic = registry.get(driver).features.cluster_nic
    if nic == CLUSTER_NONE:  # its nodes would advertise an address that exists nowhere
        raise UsageError(f"Swarm nodes cannot use the {driver!r} driver yet: it has no cluster network",
                         f"Use a driver that has one: {', '.join(cluster_drivers())} (see docs/swarm.md).")
    with lock(store, cluster_name):
        try:
            cluster = load(store, cluster_name)
        except NotFound:
            if role != "manager":
                raise UsageError(f"Swarm cluster {cluster_name!r} does not exist",
                                 f"Create it first: machine swarm create {cluster_name}, or machine create "
                                 f"--swarm-manager {cluster_name} NAME") from None
            cluster = new_cluster(store, cluster_name, driver)
        if machine in cluster.members and store.exists(machine):
            raise UsageError(f"Machine {machine!r} is already in cluster {cluster_name!r}", "Pick another name.")
        cluster.members.pop(machine, None)  # a member removed with `machine rm` may come back
        address = cluster.next_address()
        cluster.members[machine] = {"role": role, "address": address, "joined": False}
        save(store, cluster)
    switch = ensure_switch(store, cluster_name) if nic == CLUSTER_VDE else None
    return {"cluster": cluster_name, "role": role, "address": address,
            "prefix": cluster.network.prefixlen, "mac": mac_for(machine),
            "switch": str(switch) if switch else ""}


def cluster_drivers() -> list[str]:
    """The drivers that can plug a node's second NIC into a cluster network."""
    return [n for n in registry.names() if registry.get(n).features.cluster_nic != CLUSTER_NONE]


def forget_member(store: Store, cluster_name: str, machine: str) -> None:
    """Drop `machine` from the cluster record (its address becomes free)."""
    with lock(store, cluster_name):
        try:
            cluster = load(store, cluster_name)
        except NotFound:
            return
        cluster.members.pop(machine, None)
        save(store, cluster)


def mark_joined(store: Store, cluster_name: str, nodes: Sequence[str]) -> None:
    with lock(store, cluster_name):
        cluster = load(store, cluster_name)
        for n in nodes:
            if n in cluster.members:
                cluster.members[n]["joined"] = True
        save(store, cluster)


# -- the switch process -------------------------------------------------------------------------


def switch_socket(store: Store, name: str) -> Path:
    return cluster_dir(store, name) / "switch"


def _pidfile(store: Store, name: str) -> Path:
    return cluster_dir(store, name) / "switch.pid"


def switch_pid(store: Store, name: str) -> int | None:
    try:
        pid = int(_pidfile(store, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if process.pid_alive(pid) else None  # a zombie (exited, not yet reaped) is not running


def ensure_switch(store: Store, name: str) -> Path:
    """Start the cluster's switch unless it runs; return its socket directory."""
    sock = switch_socket(store, name)
    if switch_pid(store, name):
        return sock
    binary = process.which("vde_switch")
    if not binary:
        raise HostNotUsable("vde_switch not found: Swarm clusters on qemu need a userspace switch",
                            "Install it: apt install vde2 (macOS: brew install vde).")
    ensure_dir(cluster_dir(store, name))
    process.run([binary, "--sock", sock, "--daemon", "--pidfile", _pidfile(store, name), "--mode", "0600",
                 "--dirmode", "0700"], check=True, timeout=15, what="vde_switch")
    deadline = time.monotonic() + 5
    while not ((sock / "ctl").exists() and switch_pid(store, name)):  # the daemon writes its pidfile late
        if time.monotonic() > deadline:
            raise HostNotUsable("vde_switch did not create its socket", "Run with -D to see its output.")
        time.sleep(0.05)
    return sock


def stop_switch(store: Store, name: str) -> None:
    pid = switch_pid(store, name)
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not switch_pid(store, name):
                break
            time.sleep(0.05)
        else:
            process.kill_pid(pid)
    _pidfile(store, name).unlink(missing_ok=True)
