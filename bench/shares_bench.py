#!/usr/bin/env python3
"""Shared-folder benchmark: per mechanism available here, against the VM's own disk in the same run.

For each mechanism (virtiofs, 9p, reverse-sftp: those `machine doctor` says this host has; --mechanisms picks),
a qemu machine
is created sharing a temp folder (MACHINE_SHARE_MECHANISM pins the mechanism), and in the guest, on the share and
on the VM's data disk: sequential write of a 256 MiB file (dd, fsync) and read of it after dropping the caches
(MB/s); untar of a tree of ~5,000 small files, then `find` + `stat` of all of them (seconds). Target: small-file
work on the fastest share <= 3x the VM's own disk. Prints a table and JSON, with the host's load average.

Usage (on a quiet host): python3 bench/shares_bench.py [--driver qemu] [--mechanisms virtiofs,9p]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import process  # noqa: E402

FILES, DIRS = 5000, 100
GUEST_SCRIPT = r"""
set -e
T="$1"; TAR="$2"
now() { cut -d' ' -f1 /proc/uptime; }
rm -rf "$T/bench" && mkdir -p "$T/bench"
sync; echo 3 > /proc/sys/vm/drop_caches
a=$(now); dd if=/dev/zero of="$T/bench/big" bs=1M count=256 conv=fsync 2>/dev/null; b=$(now)
sync; echo 3 > /proc/sys/vm/drop_caches
c=$(now); dd if="$T/bench/big" of=/dev/null bs=1M 2>/dev/null; d=$(now)
rm -f "$T/bench/big"
e=$(now); tar -xf "$TAR" -C "$T/bench"; f=$(now)
sync; echo 3 > /proc/sys/vm/drop_caches
g=$(now); n=$(find "$T/bench/tree" | wc -l); find "$T/bench/tree" -exec stat -c %s {} + >/dev/null; h=$(now)
rm -rf "$T/bench"
echo "$a $b $c $d $e $f $g $h $n"
"""


def machine(args: list[str], env: dict[str, str], timeout: float = 1200) -> process.Result:
    return process.run([sys.executable, "-m", "machine", *args], env=env, timeout=timeout)


def small_tree_tar() -> bytes:
    """~5,000 files of 0.5-4 KiB in 100 folders (a source checkout's shape)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in range(DIRS):
            info = tarfile.TarInfo(f"tree/d{d:03d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            for f in range(FILES // DIRS):
                data = (f"{d}-{f} " * (64 + (d * f) % 450)).encode()[: 512 + (d * 37 + f * 91) % 3584]
                info = tarfile.TarInfo(f"tree/d{d:03d}/f{f:03d}.txt")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def measure(name: str, env: dict[str, str], target: str) -> dict[str, float]:
    ssh = process.run([sys.executable, "-m", "machine", "ssh", name, "sh", "-s", "--", target, "/mnt/data/tree.tar"],
                      env=env, input=GUEST_SCRIPT, timeout=1200)
    if not ssh.ok:
        raise SystemExit(f"guest run on {target} failed: {ssh.stderr}")
    a, b, c, d, e, f, g, h, n = (float(x) for x in ssh.stdout.split()[-9:])
    return {"write_MBps": round(256 / (b - a), 1), "read_MBps": round(256 / (d - c), 1),
            "untar_s": round(f - e, 2), "find_stat_s": round(h - g, 2), "small_files_s": round((f - e) + (h - g), 2),
            "entries": int(n)}


def run_mechanism(driver: str, mechanism: str, work: Path, tar: bytes) -> dict:
    share = work / f"share-{mechanism}"
    share.mkdir()
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "dc"),
           "MACHINE_SHARE_MECHANISM": mechanism}
    name = f"shb-{mechanism}-{uuid.uuid4().hex[:4]}"
    created = machine(["create", "-d", driver, "--no-share", name], env=env)
    if not created.ok:
        raise SystemExit(f"create failed: {created.stderr}")
    try:
        # shares change on a stopped machine: stop, share the folder, start (also exercises machine set)
        for args in (["stop", name], ["set", name, "--share", f"{share}:/bench-share"], ["start", name]):
            res = machine(args, env=env)
            if not res.ok:
                raise SystemExit(f"machine {' '.join(args)} failed: {res.stderr}")
        if "share" in res.stderr and "machine runs without it" in res.stderr:
            lines = res.stderr.strip().splitlines()
            return {"mechanism": mechanism, "error": next((x for x in lines if "share" in x), lines[-1])}
        up = process.run([sys.executable, "-m", "machine", "ssh", name, "cat > /mnt/data/tree.tar"], env=env,
                         input=tar, timeout=600)  # type: ignore[arg-type]
        if not up.ok:
            raise SystemExit(f"upload failed: {up.stderr}")
        disk = measure(name, env, "/mnt/data")
        shared = measure(name, env, "/bench-share")
        return {"mechanism": mechanism, "disk": disk, "share": shared,
                "small_files_ratio": round(shared["small_files_s"] / disk["small_files_s"], 2)}
    finally:
        machine(["rm", "-y", "-f", name], env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", default="qemu")
    parser.add_argument("--mechanisms", default="", help="comma-separated (default: every one this host has)")
    args = parser.parse_args()
    from machine import registry
    from machine.shares import mechanisms

    declared = registry.get(args.driver).features.share_mechanisms
    wanted = [m for m in args.mechanisms.split(",") if m] or [m for m in declared if mechanisms.check(m).ok]
    tar = small_tree_tar()
    load_before = os.getloadavg()
    results = []
    work = Path(tempfile.mkdtemp(prefix="shares-bench-"))
    try:
        for m in wanted:
            results.append(run_mechanism(args.driver, m, work, tar))
            # each mechanism as it ends (a run takes many minutes under TCG): nothing is lost if a later one hangs
            print(json.dumps({**results[-1], "load_avg": os.getloadavg()}), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'mechanism':<10}{'where':<7}{'write MB/s':>11}{'read MB/s':>10}{'untar s':>9}{'find+stat s':>12}"
          f"{'small x disk':>13}")
    for r in results:
        if "error" in r:
            print(f"{r['mechanism']:<10}failed: {r['error']}")
            continue
        for where in ("disk", "share"):
            x = r[where]
            ratio = f"{r['small_files_ratio']:>13}" if where == "share" else f"{'1.0':>13}"
            print(f"{r['mechanism']:<10}{where:<7}{x['write_MBps']:>11}{x['read_MBps']:>10}{x['untar_s']:>9}"
                  f"{x['find_stat_s']:>12}{ratio}")
    print(json.dumps({"driver": args.driver, "files": FILES, "load_avg_before": load_before,
                      "load_avg_after": os.getloadavg(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
