#!/usr/bin/env python3
"""Benchmark `machine start` of a suspended (Saved) machine against a cold start of the same machine, in one run:
create a qemu machine, run a container, then `--cold` times: stop + start (a boot), and `--saved` times: suspend +
start (a resume). For each start: the command's wall time, and when the engine first answered through TLS (a
`docker version` poller beside the command). Also the suspend time and the saved state's size.

    python3 bench/saved_bench.py [--driver qemu] [--saved 3] [--cold 1] [--memory 1024]

Runs `machine` as a subprocess in an isolated temp store. Prints a table (stderr) and JSON (stdout), with the
host's load before and after (`/proc/loadavg`)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rootfs import write_busybox_rootfs  # noqa: E402  (bench/rootfs.py, beside this script)

from machine import machinedir, process  # noqa: E402
from machine.errors import MachineError  # noqa: E402

TARGET_S = 3.0


def machine(args: list[str], env: dict[str, str], timeout: float = 900) -> process.Result:
    res = process.run([sys.executable, "-m", "machine", *args], env=env, timeout=timeout)
    if not res.ok:
        raise SystemExit(f"machine {' '.join(args)} failed:\n{res.stdout}{res.stderr}")
    return res


def docker_env(name: str, env: dict[str, str]) -> dict[str, str]:
    out = dict(env)
    for line in machine(["env", name], env).stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            out[key] = value.strip('"')
    return out


def docker(args: list[str], env: dict[str, str], timeout: float = 120) -> process.Result:
    return process.run(["docker", *args], env=env, timeout=timeout)


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def timed_start(name: str, env: dict[str, str], denv: dict[str, str]) -> dict[str, float | str]:
    """`machine start` with a poller asking the engine for its version every 0.1 s from the start."""
    answered: list[float] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def poll() -> None:
        while not stop.is_set():
            try:
                if docker(["version", "--format", "{{.Server.Version}}"], denv, timeout=5).ok:
                    answered.append(time.monotonic() - t0)
                    return
            except MachineError:  # the docker CLI hung (the guest accepts TCP while booting): ask again
                pass
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    res = machine(["start", name], env)
    total = time.monotonic() - t0
    poller.join(10)
    stop.set()
    return {"start_s": round(total, 2), "engine_answers_s": round(answered[0], 2) if answered else -1.0,
            "steps": " | ".join(line for line in res.stderr.splitlines() if "done (" in line or "Warning" in line)}


def run(driver: str, memory: int, saved_runs: int, cold_runs: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="saved-bench-"))
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(tmp / "store"), "DOCKER_CONFIG": str(tmp / "docker-config")}
    env.pop("DOCKER_HOST", None)
    name = "savedbench"
    result: dict = {"driver": driver, "memory_mib": memory, "load_before": load(), "cold": [], "saved": []}
    try:
        machine(["create", "-d", driver, f"--{driver}-memory", str(memory), name], env)
        denv = docker_env(name, env)
        if not docker(["import", str(write_busybox_rootfs(tmp / "bb.tar", ("sh", "sleep"))), "bench:1"], denv).ok:
            raise SystemExit("docker import failed")
        if not docker(["run", "-d", "--restart", "no", "--name", "keep", "bench:1", "sh", "-c",
                       "while true; do sleep 1; done"], denv).ok:
            raise SystemExit("docker run failed")
        for _ in range(cold_runs):
            machine(["stop", name], env)  # (the engine URL stays: the forwarded ports are kept while free)
            result["cold"].append(timed_start(name, env, denv))
            docker(["start", "keep"], denv)
        for _ in range(saved_runs):
            t0 = time.monotonic()
            machine(["suspend", name], env)
            suspend_s = time.monotonic() - t0
            size = (tmp / "store" / "machines" / name / machinedir.SAVED_STATE).stat().st_size
            run_ = timed_start(name, env, denv)
            run_.update(suspend_s=round(suspend_s, 2), state_mib=round(size / 2**20, 1))
            running = docker(["inspect", "-f", "{{.State.Running}}", "keep"], denv).stdout.strip()
            run_["container_kept"] = running == "true"
            result["saved"].append(run_)
    finally:
        process.run([sys.executable, "-m", "machine", "rm", "-y", "-f", name], env=env, timeout=300)
        result["load_after"] = load()
    for kind in ("cold", "saved"):
        answers = [r["engine_answers_s"] for r in result[kind] if r["engine_answers_s"] >= 0]
        result[f"{kind}_engine_answers_median_s"] = round(statistics.median(answers), 2) if answers else None
    return result


def table(r: dict) -> str:
    lines = [f"driver {r['driver']}, {r['memory_mib']} MiB guest, load before {r['load_before']}, "
             f"after {r['load_after']}", f"{'run':<8} {'start (s)':>10} {'engine answers (s)':>19} "
             f"{'suspend (s)':>12} {'state MiB':>10}  container kept"]
    for kind in ("cold", "saved"):
        for run_ in r[kind]:
            lines.append(f"{kind:<8} {run_['start_s']:>10} {run_['engine_answers_s']:>19} "
                         f"{run_.get('suspend_s', ''):>12} {run_.get('state_mib', ''):>10}  "
                         f"{run_.get('container_kept', '')}")
    lines.append(f"median engine answers: cold {r['cold_engine_answers_median_s']} s, saved "
                 f"{r['saved_engine_answers_median_s']} s (target <= {TARGET_S} s)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", default="qemu", choices=("qemu", "libvirt"))
    ap.add_argument("--memory", type=int, default=1024)
    ap.add_argument("--saved", type=int, default=3)
    ap.add_argument("--cold", type=int, default=1)
    args = ap.parse_args()
    result = run(args.driver, args.memory, args.saved, args.cold)
    print(table(result), file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
