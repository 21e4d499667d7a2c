"""Cluster networks: subnet and address allocation, stable MACs, and the real vde_switch process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from machine import process
from machine.errors import NotFound
from machine.store import Store
from machine.swarm import clusternet


def test_subnets_are_distinct_and_private(store_root: Path) -> None:
    store = Store(store_root)
    a = clusternet.new_cluster(store, "a", "qemu")
    clusternet.save(store, a)
    b = clusternet.new_cluster(store, "b", "qemu")
    assert a.subnet != b.subnet
    assert a.network.is_private and b.network.is_private
    assert clusternet.names(store) == ["a"]


def test_addresses_skip_low_hosts_and_used_ones(store_root: Path) -> None:
    c = clusternet.Cluster(name="c", subnet="10.77.5.0/24")
    first = c.next_address()
    assert first == "10.77.5.10"
    c.members["n1"] = {"role": "manager", "address": first}
    assert c.next_address() == "10.77.5.11"
    assert c.managers() == ["n1"] and c.workers() == []


def test_mac_is_stable_local_and_unicast() -> None:
    mac = clusternet.mac_for("node-1")
    assert mac == clusternet.mac_for("node-1") != clusternet.mac_for("node-2")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, unicast


def test_missing_cluster_is_not_found(store_root: Path) -> None:
    with pytest.raises(NotFound):
        clusternet.load(Store(store_root), "nope")


@pytest.mark.skipif(not shutil.which("vde_switch"), reason="vde_switch not installed (apt install vde2)")
def test_switch_starts_once_and_stops(store_root: Path) -> None:
    store = Store(store_root)
    try:
        sock = clusternet.ensure_switch(store, "sw")
        pid = clusternet.switch_pid(store, "sw")
        assert pid and (sock / "ctl").exists()
        assert clusternet.ensure_switch(store, "sw") == sock
        assert clusternet.switch_pid(store, "sw") == pid  # not started twice
        clusternet.stop_switch(store, "sw")
        assert clusternet.switch_pid(store, "sw") is None
        # gone, or a zombie its parent (PID 1 here: vde_switch daemonizes) has not reaped yet
        assert not process.pid_alive(pid)
        state = Path(f"/proc/{pid}/stat")
        assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        assert not (store_root / "swarms" / "sw" / "switch.pid").exists()
    finally:
        clusternet.stop_switch(store, "sw")


def test_rm_of_a_member_frees_its_cluster_address(store_root: Path) -> None:
    from machine import orchestrator
    from machine.progress import Progress
    from machine.store import MachineConfig

    store = Store(store_root)
    cluster = clusternet.Cluster(name="c", subnet="10.77.9.0/24")
    cluster.members["a"] = {"role": "worker", "address": "10.77.9.10"}
    clusternet.save(store, cluster)
    store.make_machine_dir("a")
    store.save(MachineConfig(name="a", driver="none", driver_options={"url": "tcp://127.0.0.1:2376"},
                             swarm={"cluster": "c", "role": "worker"}))
    orchestrator.remove(store, "a", Progress(quiet=True))
    assert "a" not in clusternet.load(store, "c").members
    assert clusternet.load(store, "c").next_address() == "10.77.9.10"
