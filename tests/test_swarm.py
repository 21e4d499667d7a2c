"""Swarm without VMs: the cluster NIC's network-config in the seed, membership planning, the listing column,
and the `machine swarm` commands that need no machine."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from machine.drivers.none import NoneDriver
from test_provision import _ctx, read_seed, seedy  # noqa: F401 - seedy is a fixture

from machine.cli import main
from machine.driver import CLUSTER_DRIVER
from machine.errors import MachineError, UsageError
from machine.ls.listing import swarm_column
from machine.provision.precreate import cluster_network, prepare
from machine.store import MachineConfig, Store
from machine.swarm import clusternet, clusters, nodecommands


@pytest.fixture
def none_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plan members on the `none` driver (no VM, no switch) as if it linked nodes with a network of its own."""
    monkeypatch.setattr(NoneDriver, "features", replace(NoneDriver.features, cluster_nic=CLUSTER_DRIVER))


needs_vde = pytest.mark.skipif(not shutil.which("vde_switch"), reason="vde_switch not installed (apt install vde2)")


def test_seed_configures_the_cluster_nic_by_mac(store_root: Path, seedy: None) -> None:  # noqa: F811
    store = Store(store_root)
    member = {"cluster": "c", "role": "worker", "address": "10.77.1.11", "prefix": 24, "mac": "52:54:01:aa:bb:cc",
              "switch": "/x/switch"}
    cfg = MachineConfig(name="c-w1", driver="seedy", engine={"transport": "tls", "port": 2376}, swarm=member)
    ctx = _ctx(store, cfg)
    prepare(store, cfg, ctx)
    net = json.loads(read_seed(ctx.seed_path)["network-config"])
    assert net == {"version": 2, "ethernets": {"c0": {"match": {"macaddress": "52:54:01:aa:bb:cc"},
                                                        "addresses": ["10.77.1.11/24"]}}}


def test_no_network_config_outside_a_cluster(store_root: Path, seedy: None) -> None:  # noqa: F811
    store = Store(store_root)
    cfg = MachineConfig(name="solo", driver="seedy", engine={"transport": "tls", "port": 2376})
    ctx = _ctx(store, cfg)
    prepare(store, cfg, ctx)
    assert "network-config" not in read_seed(ctx.seed_path)
    # a libvirt-style membership without our NIC (no mac) adds nothing either
    assert cluster_network(MachineConfig(name="x", driver="d", swarm={"cluster": "c", "role": "worker"})) is None


def test_plan_member_allocates_addresses_and_records_roles(store_root: Path, none_nodes: None) -> None:
    store = Store(store_root)
    m = clusters.plan_member(store, "c", "c-m1", "manager", "none")
    w = clusters.plan_member(store, "c", "c-w1", "worker", "none")
    assert m["address"] != w["address"]
    assert m["address"].endswith(".10") and w["address"].endswith(".11")
    assert m["prefix"] == 24 and m["mac"] == clusternet.mac_for("c-m1") and m["switch"] == ""
    cluster = clusternet.load(store, "c")
    assert cluster.managers() == ["c-m1"] and cluster.workers() == ["c-w1"]
    # no such machine (yet, or `machine rm`ed): planned again
    clusters.plan_member(store, "c", "c-w1", "worker", "none")
    assert clusternet.load(store, "c").members["c-w1"]["address"] == w["address"]
    store.save(MachineConfig(name="c-w1", driver="none"))
    with pytest.raises(UsageError, match="already in cluster"):
        clusters.plan_member(store, "c", "c-w1", "worker", "none")
    clusters.forget_member(store, "c", "c-w1")
    assert clusternet.load(store, "c").workers() == []


def test_joining_a_missing_cluster_is_a_usage_error(store_root: Path, none_nodes: None) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        clusters.plan_member(Store(store_root), "nope", "n1", "worker", "none")
    assert clusternet.names(Store(store_root)) == []


@needs_vde
def test_qemu_member_starts_the_switch_and_rm_stops_it(store_root: Path) -> None:
    store = Store(store_root)
    try:
        m = clusters.plan_member(store, "q", "q-m1", "manager", "qemu")
        assert m["switch"] == str(clusternet.switch_socket(store, "q"))
        assert clusternet.switch_pid(store, "q")
        result = CliRunner().invoke(_cli(), ["swarm", "rm", "-y", "q"])
        assert result.exit_code == 0, result.output
        assert clusternet.switch_pid(store, "q") is None
        assert not clusternet.cluster_dir(store, "q").exists()
        assert list((store_root / "swarms").iterdir()) == []  # no lock file left either
    finally:
        clusternet.stop_switch(store, "q")  # never leave a switch behind, even when an assertion failed


def test_swarm_column(store_root: Path) -> None:
    assert swarm_column(MachineConfig(name="a", driver="none")) == ""
    assert swarm_column(MachineConfig(name="a", driver="none", swarm={"cluster": "c", "role": "manager"})) \
        == "c (manager)"
    assert swarm_column(MachineConfig(name="a", driver="none", swarm={"cluster": "c", "role": "worker"})) == "c"


def test_swarm_ls_json_and_missing_cluster_rm(store_root: Path, capsys: pytest.CaptureFixture,
                                              none_nodes: None) -> None:
    store = Store(store_root)
    clusters.plan_member(store, "c", "c-m1", "manager", "none")
    runner = CliRunner()
    result = runner.invoke(_cli(), ["swarm", "ls", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows == [{"Name": "c", "Managers": ["c-m1"], "Workers": [], "Subnet": clusternet.load(store, "c").subnet,
                     "Switch": "stopped"}]
    with pytest.raises(SystemExit) as exit_:
        main(["swarm", "rm", "-y", "nope"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "Swarm cluster 'nope' does not exist" in err and "Traceback" not in err


def test_swarm_create_refuses_bad_create_options_before_making_anything(store_root: Path) -> None:
    result = CliRunner().invoke(_cli(), ["swarm", "create", "c", "--workers", "1", "-d", "qemu", "--no-such-flag"])
    assert result.exit_code == 2, result.output
    assert clusternet.names(Store(store_root)) == [] and not Store(store_root).names()


def _cli():  # noqa: ANN202
    from machine.cli import cli

    return cli


def test_plan_gives_nodes_engine_labels_and_keeps_the_users(store_root: Path, none_nodes: None) -> None:
    from machine.commands.createoptions import parse_request

    store = Store(store_root)
    planned = clusters._plan(store, "c", [("c-m1", "manager"), ("c-w1", "worker")],
                          lambda node: parse_request(node, ["-d", "none", "--url", "tcp://127.0.0.1:2376",
                                                            "--engine-label", "team=a"]))
    (m, m_role), (w, w_role) = planned
    assert (m_role, w_role) == ("manager", "worker")
    assert m.engine["labels"] == ["team=a", "machine.cluster=c", "machine.role=manager"]
    assert w.engine["labels"] == ["team=a", "machine.cluster=c", "machine.role=worker"]
    assert m.swarm["address"] != w.swarm["address"] and m.swarm["cluster"] == "c"


def test_swarm_create_refuses_a_missing_load_tarball_before_making_anything(store_root: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["swarm", "create", "c", "--workers", "1", "--load", "/nonexistent/rootfs.tar=bb:1", "-d", "none",
              "--url", "tcp://127.0.0.1:2376"])
    assert exit_.value.code == 2
    assert "Image tarball /nonexistent/rootfs.tar not found" in capsys.readouterr().err
    assert clusternet.names(Store(store_root)) == [] and not Store(store_root).names()


def test_drivers_without_a_cluster_network_are_refused(store_root: Path) -> None:
    with pytest.raises(UsageError, match="cannot use the 'none' driver") as err:
        clusters.plan_member(Store(store_root), "c", "c-m1", "manager", "none")
    assert "Use a driver that has one: qemu " in err.value.hint  # the drivers whose features declare a cluster NIC
    assert clusternet.names(Store(store_root)) == []


FAKE_DOCKER = r"""#!/bin/sh
# a docker CLI stand-in: swarm init/join succeed once, then say the node is in a swarm already
echo "$*" >>"$STATE/calls"
already() { echo "Error response from daemon: This node is already part of a swarm." >&2; exit 1; }
case "$1 $2" in
"swarm init")
    [ -e "$STATE/active" ] && already
    touch "$STATE/active"
    echo "Swarm initialized: current node (abc) is now a manager."
    echo "    docker swarm join --token SWMTKN-1-worker0token 10.77.1.10:2377"
    ;;
"swarm join-token") echo "SWMTKN-1-$4token" ;;
"swarm join")
    [ -e "$STATE/active" ] && already
    case "$*" in *--token*bad*) echo "Error response from daemon: invalid join token" >&2; exit 1 ;; esac
    touch "$STATE/active"; echo "This node joined a swarm as a worker."
    ;;
esac
"""


@pytest.fixture
def local_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """node_run runs its shell command here, with a fake docker on PATH (state per node in tmp_path/NODE)."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)

    def node_run(store, name, command, *, input=None, check=True, timeout=120.0, secrets=()):  # noqa: ANN001, ANN202
        state = tmp_path / name
        state.mkdir(exist_ok=True)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(state)}
        res = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=10)
        if check and res.returncode:
            raise MachineError(f"failed on {name}: {res.stderr.strip()}")
        return res.stdout

    monkeypatch.setattr(nodecommands, "node_run", node_run)
    return tmp_path


def test_init_returns_the_worker_token_and_is_idempotent(store_root: Path, local_nodes: Path) -> None:
    store = Store(store_root)
    assert nodecommands.init_swarm(store, "m1", "10.77.1.10") == "SWMTKN-1-worker0token"
    # already a manager: asks for it
    assert nodecommands.init_swarm(store, "m1", "10.77.1.10") == "SWMTKN-1-workertoken"
    calls = (local_nodes / "m1" / "calls").read_text().splitlines()
    assert calls[0] == "swarm init --advertise-addr 10.77.1.10 --listen-addr 10.77.1.10:2377"
    assert calls[-1] == "swarm join-token -q worker"
    assert nodecommands.join_token(store, "m1", "manager") == "SWMTKN-1-managertoken"


def test_join_is_idempotent_and_reports_real_errors(store_root: Path, local_nodes: Path) -> None:
    store = Store(store_root)
    nodecommands.join_swarm(store, "w1", "SWMTKN-1-x", "10.77.1.11", "10.77.1.10")
    nodecommands.join_swarm(store, "w1", "SWMTKN-1-x", "10.77.1.11", "10.77.1.10")  # already in: fine
    assert (local_nodes / "w1" / "calls").read_text().splitlines()[0] == \
        "swarm join --token SWMTKN-1-x --advertise-addr 10.77.1.11 --listen-addr 10.77.1.11:2377 10.77.1.10:2377"
    with pytest.raises(MachineError, match="invalid join token"):
        nodecommands.join_swarm(store, "w2", "SWMTKN-1-bad", "10.77.1.12", "10.77.1.10")
