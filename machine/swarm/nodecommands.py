"""Docker Swarm commands run inside one node over SSH, each a single round trip and safe to repeat:
`docker swarm init`, join tokens, `docker swarm join`, node labels, and the guest loop that waits
for a drained node's tasks to run elsewhere. `machine.swarm.clusters` composes them into clusters.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from machine import orchestrator
from machine.errors import ClusterError
from machine.store import Store

SWARM_PORT = 2377

_TOKEN = re.compile(r"SWMTKN-[0-9A-Za-z-]+")
# every docker CLI start costs about a second of guest CPU under TCG: no `docker info` checks first; a node that
# is already in a swarm (a retried command) is recognised from the error message instead
_ALREADY = "already part of a swarm"


def node_run(store: Store, name: str, command: str, *, input: bytes | None = None, check: bool = True,
             timeout: float = 120.0, secrets: Sequence[str] = ()) -> str:
    """Run a shell command in machine `name` over SSH (pinned host key) and return its stdout."""
    from machine.provision.remote import open_session

    cfg = store.load(name)
    driver = orchestrator.driver_for(store, cfg)
    with open_session(store, cfg, driver, timeout=timeout) as session:
        res = session.run(command, check=check, input=input, timeout=max(timeout, 300.0), secrets=secrets)
    return res.stdout


def init_swarm(store: Store, manager: str, address: str) -> str:
    """`docker swarm init` on `manager` (unless it is in a swarm already); returns the worker join token."""
    out = node_run(store, manager, f"out=$(docker swarm init --advertise-addr {address} --listen-addr "
                                   f"{address}:{SWARM_PORT} 2>&1) && echo \"$out\" || case \"$out\" in "
                                   f"*'{_ALREADY}'*) docker swarm join-token -q worker ;; "
                                   "*) echo \"$out\" >&2; exit 1 ;; esac")
    tokens = _TOKEN.findall(out)
    if not tokens:
        raise ClusterError(f"docker swarm init on {manager!r} printed no join token", out.strip()[-300:])
    return tokens[0]


def join_token(store: Store, manager: str, role: str) -> str:
    """The token a new `role` ("worker" or "manager") joins the swarm of `manager` with."""
    out = node_run(store, manager, f"docker swarm join-token -q {role}")
    tokens = _TOKEN.findall(out)
    if not tokens:
        raise ClusterError(f"No {role} join token from {manager!r}", out.strip()[-300:])
    return tokens[0]


def join_swarm(store: Store, node: str, token: str, address: str, manager_address: str) -> None:
    """`docker swarm join` on `node`, advertising and listening on `address`; a node already in is fine."""
    node_run(store, node, f"out=$(docker swarm join --token {shlex.quote(token)} --advertise-addr {address} "
                          f"--listen-addr {address}:{SWARM_PORT} {manager_address}:{SWARM_PORT} 2>&1) || "
                          f"case \"$out\" in *'{_ALREADY}'*) ;; *) echo \"$out\" >&2; exit 1 ;; esac",
             secrets=[token])


def label_nodes(store: Store, manager: str, cluster: str, nodes: dict[str, str]) -> None:
    """Label nodes (name -> role) with machine.cluster/role/name, in one round trip."""
    cmds = [f"docker node update --label-add machine.cluster={shlex.quote(cluster)} --label-add machine.role={role} "
            f"--label-add machine.name={shlex.quote(node)} {shlex.quote(node)} >/dev/null"
            for node, role in nodes.items()]
    node_run(store, manager, " && ".join(cmds))


def wait_drained_script(node: str, timeout: float) -> str:
    """A guest shell loop (one SSH round trip) that prints `drained` once no task of `node` runs any more
    and every replicated service is back at its replica count (the moved tasks run elsewhere)."""
    q = shlex.quote(node)
    check = (f"test -z \"$(docker node ps {q} -q -f desired-state=running)\" && "
             f"! docker node ps {q} --format '{{{{.CurrentState}}}}' | grep -qE '^(Running|Starting|Preparing)' && "
             "docker service ls --format '{{.Mode}} {{.Replicas}}' | "
             "awk '$1 == \"replicated\" { split($2, r, \"/\"); if (r[1] != r[2]) bad = 1 } END { exit bad }'")
    return (f"end=$(($(date +%s) + {int(timeout)})); while [ $(date +%s) -lt $end ]; do "
            f"if {check}; then echo drained; exit 0; fi; sleep 1; done")
