#!/usr/bin/env python3
"""Benchmark a Swarm from nothing to a running service: `machine swarm create` (1 manager + 2 workers,
qemu, 1 vCPU / 512 MiB each) -> `machine swarm load` of a busybox rootfs (with --preload: `swarm create
--load` instead, loading while the nodes come up) -> overlay network + 3-replica service -> 3/3 running.
Then `machine swarm rm`.

    python3 bench/swarm_bench.py [--preload] [--workers 2] [--cpus 1] [--memory 512] [--runs 1]

Runs `machine` as a subprocess in an isolated store (a temp dir unless --keep-store), so the figures are what
a user waits for. Per-node create/join times come from `swarm create`'s progress lines. Prints a table
(stderr) and JSON (stdout). Target: create -> service 3/3 <= 90 s on a 2-core TCG host.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rootfs  # bench/rootfs.py, beside this script

TARGET_S = 90.0
BUSYBOX = "/bin/busybox"


def run(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{res.stdout}\n{res.stderr}")
    return res


def machine(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "machine", *args], env, timeout)


def docker_env(name: str, env: dict[str, str]) -> dict[str, str]:
    out = dict(env)
    for line in machine(["env", name], env).stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            out[key] = value.strip('"')
    return out


def rootfs_tar(path: Path) -> Path:
    return rootfs.write_busybox_rootfs(path, ("sh", "nc", "hostname"))


def qemu_rss_mib(marker: str) -> float:
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode(errors="replace") \
                    and b"qemu-system" in (proc / "cmdline").read_bytes():
                rss = re.search(r"VmRSS:\s+(\d+)", (proc / "status").read_text())
                total += int(rss.group(1)) if rss else 0
        except OSError:
            continue
    return round(total / 1024, 1)


def one_run(args: argparse.Namespace, store: Path, work: Path) -> dict:
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(store), "DOCKER_CONFIG": str(work / "docker-config")}
    env.pop("DOCKER_HOST", None)
    cluster = "bench"
    replicas = 1 + args.workers
    result: dict = {"nodes": replicas, "cpus": args.cpus, "memory_mib": args.memory,
                    "image": "swarm create --load" if args.preload else "swarm load after create"}
    t0 = time.monotonic()
    try:
        tarball = rootfs_tar(work / "rootfs.tar")
        preload = ["--load", f"{tarball}=bb:1"] if args.preload else []
        res = machine(["swarm", "create", cluster, "--managers", "1", "--workers", str(args.workers), *preload,
                       "-d", "qemu", "--qemu-cpus", str(args.cpus), "--qemu-memory", str(args.memory)], env)
        result["swarm_create_s"] = round(time.monotonic() - t0, 1)
        progress = res.stdout + res.stderr
        result["node_created_s"] = {m.group(1): float(m.group(2))
                                    for m in re.finditer(r"Created \w+ '([^']+)' \((\d+\.\d)s\)", progress)}
        result["node_in_swarm_s"] = {m.group(1) or m.group(2): float(m.group(3)) for m in re.finditer(
            r"(?:Swarm initialised on '([^']+)'|'([^']+)' joined as \w+) \((\d+\.\d)s\)", progress)}
        t = time.monotonic()
        if not args.preload:
            machine(["swarm", "load", cluster, str(tarball), "--tag", "bb:1"], env)
        result["load_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        denv = docker_env(f"{cluster}-m1", env)
        run(["docker", "network", "create", "-d", "overlay", "--attachable", "net"], denv)
        run(["docker", "service", "create", "-d", "--name", "echo", "--replicas", str(replicas), "--network", "net",
             "--stop-grace-period", "1s", "bb:1", "nc", "-ll", "-p", "8080", "-e", "hostname"], denv)
        deadline = time.monotonic() + 600
        while True:
            out = run(["docker", "service", "ls", "--filter", "name=echo", "--format", "{{.Replicas}}"], denv).stdout
            if out.strip().startswith(f"{replicas}/{replicas}"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"service did not converge: {out}")
            time.sleep(1)
        result["service_s"] = round(time.monotonic() - t, 1)
        result["create_to_service_s"] = round(time.monotonic() - t0, 1)
        nodes = run(["docker", "service", "ps", "echo", "-f", "desired-state=running", "--format", "{{.Node}}"],
                    denv).stdout.split()
        result["distinct_nodes"] = len(set(nodes))
        result["qemu_rss_mib_total"] = qemu_rss_mib(str(store))
    finally:
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "machine", "swarm", "rm", "-y", "-f", cluster], env=env,
                       capture_output=True, timeout=300)
        result["rm_s"] = round(time.monotonic() - t, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--memory", type=int, default=512)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--preload", action="store_true",
                    help="load the image during the create (swarm create --load) instead of swarm load after it")
    ap.add_argument("--keep-store", type=Path, help="use this store dir (kept) instead of a temp dir")
    args = ap.parse_args()
    for tool in ("qemu-system-x86_64", "vde_switch", "docker"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
            store = args.keep_store or Path(tmp) / "store"
            runs.append(one_run(args, store, Path(tmp)))
        print(f"run {i + 1}: {runs[-1]}", file=sys.stderr)
    load = os.getloadavg()
    report = {"runs": runs, "target_create_to_service_s": TARGET_S, "host_cores": os.cpu_count(),
              "host_loadavg_after": [round(x, 2) for x in load]}
    keys = ["swarm_create_s", "load_s", "service_s", "create_to_service_s", "rm_s", "qemu_rss_mib_total"]
    print(f"{'metric':<24}" + "".join(f"{'run ' + str(i + 1):>10}" for i in range(len(runs))), file=sys.stderr)
    for k in keys:
        print(f"{k:<24}" + "".join(f"{r.get(k, '-')!s:>10}" for r in runs), file=sys.stderr)
    best = min((r.get("create_to_service_s", 1e9) for r in runs), default=1e9)
    print(f"{'target create->3/3':<24}{TARGET_S:>10} ({'met' if best <= TARGET_S else 'NOT met'})", file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
