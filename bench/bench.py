#!/usr/bin/env python3
"""Benchmark the full path for one driver: create -> SSH ready -> engine ready -> first `docker run`
of an imported image -> rm. Also the machine's disk usage right after create, qemu's RSS when idle, and
provisioning time: from SSH answering to the engine answering through TLS (the create steps after
"Waiting for the machine to boot", as `machine create` prints them), and `machine provision` again on
the running machine.

    python3 bench/bench.py --driver qemu [--name bench] [--keep-store DIR] [--json-only]

Runs `machine` as a subprocess (python -m machine) in an isolated store (a temp dir unless
--storage-path is given), so the numbers include what a user waits for. SSH/engine readiness come
from the guest's serial markers (`machine-os: ssh-ready`, `machine-os: engine-ready`) seen in the
console log while create runs. The image is a tiny rootfs (busybox-static) `docker import`ed through
the machine's engine with the local docker CLI and the environment from `machine env`.
Prints a table (stderr) and JSON (stdout). No registry is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rootfs  # noqa: E402  (bench/rootfs.py, beside this script)

from machine import process  # noqa: E402

TARGETS = {"create_to_first_run_s": 20.0, "disk_mib": 20.0, "rss_mib": 600.0, "provisioning_s": 3.0}
BOOT_STEP = "Waiting for the machine to boot... done"
STEP = re.compile(r"^(?P<what>.*?)\.\.\. done \((?P<s>[0-9.]+)s\)$")
MARKERS = {"ssh_ready_s": "machine-os: ssh-ready", "engine_ready_s": "machine-os: engine-ready"}
IMAGE = "machine-bench/busybox:latest"


def machine(args: list[str], env: dict[str, str], timeout: float = 600) -> process.Result:
    return process.run([sys.executable, "-m", "machine", *args], env=env, timeout=timeout)


def busybox_rootfs() -> bytes:
    """A tar of a minimal root filesystem: /bin/busybox (static) and /bin/sh."""
    try:
        return rootfs.busybox_rootfs(("sh",))
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None


def parse_env(text: str) -> dict[str, str]:
    """`export K="V"` lines from `machine env --shell bash`."""
    out = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            out[key] = value.strip().strip('"')
    return out


def provisioning_steps(create_stderr: str) -> dict[str, float]:
    """The steps `machine create` timed after the guest answered SSH: {step: seconds}."""
    steps: dict[str, float] = {}
    after_boot = False
    for line in create_stderr.splitlines():
        m = STEP.match(line.strip())
        if not m:
            continue
        if after_boot:
            steps[m["what"]] = float(m["s"])
        after_boot = after_boot or line.strip().startswith(BOOT_STEP)
    return steps


def disk_usage_mib(path: Path) -> float:
    """Allocated size (blocks, so sparse files count what they use) of everything under path."""
    total = 0
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file() and not p.is_symlink():
            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return total / (1 << 20)


def qemu_pid(machine_dir: Path, name: str) -> int | None:
    """The machine's qemu: the qemu driver's pid file, else a qemu process naming the machine (libvirt)."""
    try:
        return int((machine_dir / "qemu.pid").read_text().strip())
    except (OSError, ValueError):
        pass
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and b"qemu-system" in cmd[0] and any(name.encode() in part for part in cmd[1:]):
            return int(proc.name)
    return None


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def watch_markers(console: list[Path | None], start: float, found: dict[str, float], stop: threading.Event) -> None:
    while not stop.is_set():
        path = console[0]
        if path and path.exists():
            text = path.read_bytes()
            for key, marker in MARKERS.items():
                if key not in found and marker.encode() in text:
                    found[key] = round(time.monotonic() - start, 2)
        time.sleep(0.1)


def console_path(store: Path, name: str, driver: str) -> Path | None:
    if driver == "qemu":
        return store / "machines" / name / "console.log"
    try:
        from machine.orchestrator import driver_for
        from machine.store import Store

        s = Store(store)
        return driver_for(s, s.load(name)).console_log() if s.exists(name) else None
    except Exception:
        return None


def run(driver: str, name: str, store: Path, idle: float) -> dict:
    env = {"MACHINE_STORAGE_PATH": str(store), "DOCKER_CONFIG": str(store / "docker-config")}
    result: dict = {"driver": driver}
    found: dict[str, float] = {}
    stop = threading.Event()
    console: list[Path | None] = [None]

    def locate() -> None:
        while not stop.is_set() and console[0] is None:
            console[0] = console_path(store, name, driver) if (store / "machines" / name).exists() else None
            time.sleep(0.1)

    start = time.monotonic()
    threads = [threading.Thread(target=locate, daemon=True),
               threading.Thread(target=watch_markers, args=(console, start, found, stop), daemon=True)]
    for t in threads:
        t.start()
    created = machine(["create", "-d", driver, name], env)
    result["create_s"] = round(time.monotonic() - start, 2)
    try:
        return _after_create(result, created, store, name, env, start, idle)
    finally:
        stop.set()
        result.update(found)


def _after_create(result: dict, created: process.Result, store: Path, name: str, env: dict[str, str], start: float,
                  idle: float) -> dict:
    if not created.ok:
        result["error"] = f"create failed: {created.stderr.strip()[-1500:]}"
        return result
    mdir = store / "machines" / name
    result["disk_mib"] = round(disk_usage_mib(mdir), 1)
    steps = provisioning_steps(created.stderr)
    result["provisioning_steps"] = steps
    result["provisioning_s"] = round(sum(steps.values()), 2) if steps else None
    docker_env = parse_env(machine(["env", "--shell", "bash", name], env).stdout)
    docker_env["DOCKER_CONFIG"] = env["DOCKER_CONFIG"]
    t = time.monotonic()
    imported = process.run(["docker", "import", "-", IMAGE], input=busybox_rootfs(), env=docker_env, timeout=300)
    result["docker_import_s"] = round(time.monotonic() - t, 2)
    if not imported.ok:
        result["error"] = f"docker import failed: {imported.stderr.strip()[-800:]}"
        return result
    t = time.monotonic()
    ran = process.run(["docker", "run", "--rm", IMAGE, "/bin/busybox", "echo", "bench-ok"], env=docker_env,
                      timeout=300)
    result["first_docker_run_s"] = round(time.monotonic() - t, 2)
    result["create_to_first_run_s"] = round(time.monotonic() - start, 2)
    if not ran.ok or "bench-ok" not in ran.stdout:
        result["error"] = f"docker run failed: {ran.stderr.strip()[-800:]}"
        return result
    t = time.monotonic()
    again = machine(["provision", name], env)
    result["provision_again_s"] = round(time.monotonic() - t, 2) if again.ok else None
    time.sleep(idle)
    pid = qemu_pid(mdir, name)
    result["rss_mib"] = round(rss_mib(pid), 1) if pid and rss_mib(pid) else None
    return result


def cleanup(driver: str, name: str, store: Path, result: dict) -> None:
    env = {"MACHINE_STORAGE_PATH": str(store), "DOCKER_CONFIG": str(store / "docker-config")}
    if not (store / "machines" / name).exists():
        return
    t = time.monotonic()
    removed = machine(["rm", "-y", "-f", name], env, timeout=120)
    result["rm_s"] = round(time.monotonic() - t, 2)
    if not removed.ok:
        result.setdefault("error", f"rm failed: {removed.stderr.strip()[-800:]}")


def table(result: dict) -> str:
    rows = [("create (machine create, total)", "create_s"), ("  SSH ready (serial marker)", "ssh_ready_s"),
            ("  engine ready (serial marker)", "engine_ready_s"),
            ("  provisioning (SSH -> engine TLS)", "provisioning_s"),
            ("machine provision (running machine)", "provision_again_s"), ("docker import", "docker_import_s"),
            ("first docker run", "first_docker_run_s"), ("create -> first docker run", "create_to_first_run_s"),
            ("rm", "rm_s"), ("disk after create (MiB)", "disk_mib"), ("qemu RSS idle (MiB)", "rss_mib")]
    lines = [f"driver: {result['driver']}", f"{'phase':<34} {'value':>8}  target"]
    for label, key in rows:
        value = result.get(key)
        target = TARGETS.get(key)
        verdict = ""
        if target is not None and value is not None:
            verdict = f"<= {target:g} " + ("ok" if value <= target else "MISSED")
        lines.append(f"{label:<34} {'-' if value is None else f'{value:8.2f}':>8}  {verdict}")
    if result.get("error"):
        lines.append(f"error: {result['error']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", choices=("qemu", "libvirt"), default="qemu")
    ap.add_argument("--name", default="bench")
    ap.add_argument("--storage-path", help="store to use (default: a fresh temp dir, removed afterwards)")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds idle before measuring RSS")
    ap.add_argument("--json-only", action="store_true")
    args = ap.parse_args()
    tmp = None if args.storage_path else tempfile.mkdtemp(prefix="machine-bench-")
    store = Path(args.storage_path or tmp)
    result: dict = {"driver": args.driver}
    try:
        result = run(args.driver, args.name, store, args.idle)
    except KeyboardInterrupt:
        result["error"] = "interrupted"
    finally:
        cleanup(args.driver, args.name, store, result)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.json_only:
        print(table(result), file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
