#!/usr/bin/env python3
"""Startup benchmark: wall time of store-only commands (target: `machine env` < 100 ms).

Makes a throwaway store with one `none` machine, runs each command N times through the installed
`machine` console script (not a pyenv shim) and prints the median and best wall time, as a table and JSON.
Usage: python3 bench/startup.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [["env", "a"], ["config", "a"], ["url", "a"], ["ls", "-q"], ["active"], ["version"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="runs per command")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("machine")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "machine"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MACHINE_STORAGE_PATH": str(Path(tmp) / "store"), "DOCKER_CONFIG": str(Path(tmp) / "dc")}
        env.pop("DOCKER_HOST", None)
        subprocess.run([*exe, "create", "-d", "none", "--url", "tcp://127.0.0.1:2376", "a"], env=env, check=True,
                       capture_output=True)
        rows = []
        for cmd in COMMANDS:
            times, cpu = [], []
            for _ in range(args.n):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run([*exe, *cmd], env=env, capture_output=True)
                times.append((time.perf_counter() - start) * 1000)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
            rows.append({"command": "machine " + " ".join(cmd), "median_ms": round(statistics.median(times), 1),
                         "best_ms": round(min(times), 1), "cpu_ms": round(statistics.median(cpu), 1)})
    # wall time suffers from other load on the machine; CPU time (user+sys) does much less
    print(f"{'command':<22}{'median ms':>10}{'best ms':>10}{'cpu ms':>10}")
    for r in rows:
        print(f"{r['command']:<22}{r['median_ms']:>10}{r['best_ms']:>10}{r['cpu_ms']:>10}")
    print(json.dumps({"load_avg_1m": os.getloadavg()[0], "results": rows}))
    shutil.rmtree(Path(tmp), ignore_errors=True)


if __name__ == "__main__":
    main()
