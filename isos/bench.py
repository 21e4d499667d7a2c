#!/usr/bin/env python3
"""Benchmark the machine OS: build time, sizes, boot-to-ssh-ready and boot-to-engine-ready under qemu TCG.

    python3 isos/bench.py [--image DIR] [--runs N] [--build] [--iso]

Boots are direct kernel boots (vmlinuz + initrd.img + the ISO as a read-only virtio disk) with a NoCloud seed
that carries daemon.json and the engine marker (`write_files`), so dockerd starts at boot. Each run boots a blank
data disk (first boot: formats it, generates the SSH host key) and then boots again on the same disk (later
boots). Times are wall clock from qemu start to the serial-console line; the guest's own uptime at each step is
in /run/machine-os/boot.log (printed with --verbose). The host load average is printed: the figures are only
comparable on an otherwise idle host.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TCG_ACCEL = "tcg,tb-size=128"  # the drivers' TCG translation cache in MiB (drivers/qemu/kvmprobe.py TCG_TB_CACHE_MIB)


def default_image() -> Path:
    if os.environ.get("MACHINE_OS_DIR"):
        return Path(os.environ["MACHINE_OS_DIR"])
    cache = os.environ.get("MACHINE_OS_CACHE") or str(Path.home() / ".cache/machine/machine-os")
    system = os.environ.get("MACHINE_OS_SYSTEM_CACHE") or "/var/cache/machine/machine-os"  # `sudo machine os build`
    user, shared = Path(cache) / "latest", Path(system) / "latest"
    return shared if not (user / "vmlinuz").is_file() and (shared / "vmlinuz").is_file() else user


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_seed(d: Path, pub: str) -> Path:
    src = d / "seed"
    src.mkdir()
    (src / "meta-data").write_text(json.dumps({"instance-id": "bench", "local-hostname": "bench"}))
    files = {"/etc/docker/daemon.json": b'{"hosts": ["unix:///var/run/docker.sock"]}', "/etc/docker/machine-ready": b""}
    ud = {
        "hostname": "bench",
        "ssh_authorized_keys": [pub],
        "write_files": [
            {"path": p, "encoding": "b64", "content": base64.b64encode(c).decode()} for p, c in files.items()
        ],
    }
    (src / "user-data").write_text("#cloud-config\n" + json.dumps(ud) + "\n")
    out = d / "seed.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o", str(out), str(src)],
                   check=True, capture_output=True)  # fmt: skip
    return out


def boot(image: Path, manifest: dict, d: Path, seed: Path, data: Path, key: Path, verbose: bool, mem: int) -> dict:
    serial = d / "serial.log"
    serial.unlink(missing_ok=True)
    port = free_port()
    args = ["qemu-system-x86_64", "-machine", "q35", "-accel", TCG_ACCEL, "-m", str(mem), "-smp", "2",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", f"file:{serial}",
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            "-append", manifest["cmdline"] + " machine.hostname=bench",
            "-drive", f"file={image / 'machine-os.iso'},if=virtio,format=raw,readonly=on",
            "-drive", f"file={data},if=virtio,format=qcow2",
            "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
            "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res: dict = {}
    try:
        while time.monotonic() - t0 < 300 and "engine" not in res:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            lines = [ln.strip() for ln in text.splitlines()]
            if "ssh" not in res and "machine-os: ssh-ready" in lines:
                res["ssh"] = time.monotonic() - t0
            if "machine-os: engine-ready" in lines:
                res["engine"] = time.monotonic() - t0
            bad = [ln for ln in lines if ln.startswith("machine-os: boot-failed")]
            if bad:
                raise SystemExit(bad[0])
            time.sleep(0.02)
        ssh = ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1"]  # fmt: skip
        probe = "cat /run/machine-os/boot.log; free -m | awk '/^Mem:/ {print \"mem-used-MiB\", $3}'"
        out = subprocess.run(ssh + [probe], capture_output=True, text=True, timeout=60).stdout
        for line in out.splitlines():
            if line.startswith("mem-used-MiB"):
                res["mem_used_mib"] = int(line.split()[1])
        if verbose:
            print(out, file=sys.stderr)
        subprocess.run(ssh + ["poweroff"], capture_output=True, timeout=30)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--build", action="store_true", help="time a forced rebuild first (python3 isos/build.py --force)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--memory", type=int, default=1024, help="guest RAM in MiB (default 1024)")
    args = ap.parse_args()

    if args.build:
        t = time.monotonic()
        out = subprocess.run([sys.executable, str(HERE / "build.py"), "--force"], check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]  # fmt: skip
        print(f"build (forced): {time.monotonic() - t:.1f} s -> {out}")
        image = Path(out)
    else:
        image = (args.image or default_image()).resolve()
    manifest = json.loads((image / "manifest.json").read_text())
    mib = 1 << 20
    print(f"image: {image} (recipe {manifest['recipe_hash']}, kernel {manifest['kernel']})")
    print(f"build time (recorded in manifest): {manifest.get('build_seconds')} s {manifest.get('build_times')}")
    for name, f in manifest["files"].items():
        print(f"size {name}: {f['size'] / mib:.1f} MiB")
    print(f"size rootfs.squashfs: {manifest['squashfs_size'] / mib:.1f} MiB")
    print(f"host: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} at start")

    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="mos-bench-") as td:
            d = Path(td)
            key = d / "id"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
            seed = make_seed(d, (d / "id.pub").read_text().strip())
            data = d / "data.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(data), "4G"], check=True)
            for label in ("first boot (blank data disk)", "later boot (same data disk)"):
                r = boot(image, manifest, d, seed, data, key, args.verbose, args.memory)
                print(f"run {run + 1} {label}: ssh-ready {r.get('ssh', float('nan')):.1f} s, "
                      f"engine-ready {r.get('engine', float('nan')):.1f} s, guest mem used "
                      f"{r.get('mem_used_mib', '?')} MiB (load {os.getloadavg()[0]:.2f})")  # fmt: skip
    if not shutil.which("qemu-system-x86_64"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
