#!/usr/bin/env python3
"""Startup benchmark: wall time of the read-only commands against the bare interpreter's start (issue #15 point 9:
`machine env/config/url/ls -q/active/version` within 2x `python -c pass` of the same venv, median of N runs).

Makes a throwaway store with one `none` machine, runs `python -c pass` and each command N times, interleaved
(one round runs everything once, so load changes hit all alike), through the installed `machine` console script
(not a pyenv shim), and prints the median and best wall time, the median CPU time and the ratio of the medians
to the bare start, as a table and JSON. The floor: pip's console-script wrapper (it imports re and sys) around a
module that only prints, run the same way: no entry point can start faster than that.
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

TARGET_RATIO = 2.0
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
        floor = Path(tmp) / "floor"  # pip's wrapper (distlib's script template) importing a module that only prints
        floor.mkdir()
        (floor / "only_prints.py").write_text("import sys\n\ndef main():\n    sys.stdout.write('a\\n')\n")
        (floor / "machine").write_text("import re\nimport sys\nfrom only_prints import main\n"
                                       "if __name__ == '__main__':\n"
                                       "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                                       "    sys.exit(main())\n")
        runs = {"python -c pass": [sys.executable, "-c", "pass"],
                "floor: wrapper + print": [sys.executable, str(floor / "machine")]}
        runs.update({"machine " + " ".join(cmd): [*exe, *cmd] for cmd in COMMANDS})
        # the same answer through click (machine.cli), as before the fast path (machine/fastpath.py)
        runs["env a, click path"] = [sys.executable, "-c", "import sys; sys.argv[0] = 'machine'; "
                                     "from machine.cli import main; main()", "env", "a"]
        times: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.n):
            for label, argv in runs.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(argv, env=env, capture_output=True)
                times[label].append((time.perf_counter() - start) * 1000)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[label].append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
        bare = statistics.median(times["python -c pass"])
        rows = [{"command": label, "median_ms": round(statistics.median(times[label]), 1),
                 "best_ms": round(min(times[label]), 1), "cpu_ms": round(statistics.median(cpu[label]), 1),
                 "ratio": round(statistics.median(times[label]) / bare, 2)} for label in runs]
    # wall time suffers from other load on the machine; CPU time (user+sys) does much less
    print(f"{'command':<22}{'median ms':>10}{'best ms':>10}{'cpu ms':>10}{'x bare':>8}")
    for r in rows:
        print(f"{r['command']:<22}{r['median_ms']:>10}{r['best_ms']:>10}{r['cpu_ms']:>10}{r['ratio']:>8}")
    worst = max(r["ratio"] for r in rows[2:-1])
    print(f"worst ratio {worst} (target <= {TARGET_RATIO}: {'met' if worst <= TARGET_RATIO else 'missed'})")
    print(json.dumps({"load_avg": os.getloadavg(), "runs": args.n, "target_ratio": TARGET_RATIO, "results": rows}))
    shutil.rmtree(Path(tmp), ignore_errors=True)


if __name__ == "__main__":
    main()
