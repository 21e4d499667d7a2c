"""Published-port benchmark: how fast a `docker run -d -p` port answers on the host, and how fast data flows through
the agent's forwards.

1. Latency: for each of N containers (httpd on a fresh host port), the time from `docker run -d -p PORT:8080`
   returning to the first HTTP answer on 127.0.0.1:PORT (polled every 10 ms); median and p95. Target p95 <= 1 s.
2. Throughput of a 256 MiB download (MB/s), in the same run: through the forward of a `-p` port (the driver's
   path: QMP hostfwd on qemu/libvirt), through the SSH relay (a port published on the guest's 127.0.0.1), and the
   baseline: the same file read through the engine's own forwarded port (`docker cp` over TLS). Target: the
   forward >= 50% of the baseline.

Run on a quiet host: `python3 bench/ports_bench.py [--driver qemu] [--count 20]`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from portsimage import write_ports_rootfs  # noqa: E402  (bench/portsimage.py, beside this script)

IMAGE = "ports:bench"
HTTPD = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"


def machine(*args: str, env: dict[str, str], timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "machine", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def docker(*args: str, env: dict[str, str], timeout: float = 600, check: bool = True) -> str:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return c.recv(64).startswith(b"HTTP/1")
    except OSError:
        return False


def first_answer(port: int, limit: float = 120.0) -> float:
    start = time.monotonic()
    while not http_ok(port):
        if time.monotonic() - start > limit:
            raise RuntimeError(f"port {port} did not answer within {limit} s")
        time.sleep(0.01)
    return time.monotonic() - start


def download(port: int, size: int, limit: float = 600.0) -> float:
    """MB/s reading `size` bytes from 127.0.0.1:port (retrying the connection until the server is up)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
                start = time.monotonic()
                got = 0
                while got < size:
                    chunk = c.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
                took = time.monotonic() - start
            if got >= size:
                return size / took / 1e6
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no full download from port {port}")
        time.sleep(0.5)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", default="qemu", choices=("qemu", "libvirt"))
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--size-mib", type=int, default=256)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ports-bench-"))
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(tmp / "store"), "DOCKER_CONFIG": str(tmp / "docker-config")}
    env.pop("DOCKER_HOST", None)
    name = f"pb-{uuid.uuid4().hex[:4]}"
    result: dict = {"driver": args.driver, "containers": args.count, "size_mib": args.size_mib,
                    "load_before": Path("/proc/loadavg").read_text().split()[:3]}
    try:
        res = machine("create", "-d", args.driver, f"--{args.driver}-memory", "1024", name, env=env)
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
        for line in machine("env", name, env=env).stdout.splitlines():
            if line.startswith("export "):
                k, _, v = line[7:].partition("=")
                env[k] = v.strip('"')
        docker("import", str(write_ports_rootfs(tmp / "ports.tar")), IMAGE, env=env)

        times = []
        for i in range(args.count):
            port = free_port()
            docker("run", "-d", "--name", f"lat{i}", "-p", f"{port}:8080", IMAGE, "sh", "-c", HTTPD, env=env)
            times.append(first_answer(port))
            docker("rm", "-f", f"lat{i}", env=env)
        result["latency_s"] = {"median": round(statistics.median(times), 3), "p95": round(percentile(times, 95), 3),
                               "max": round(max(times), 3), "all": [round(t, 3) for t in times]}

        size = args.size_mib << 20
        serve = (f"dd if=/dev/zero of=/blob bs=1M count={args.size_mib} 2>/dev/null && touch /ready && "
                 "while :; do nc -l -p 8080 < /blob; done")
        fwd, relay = free_port(), free_port()
        docker("run", "-d", "--name", "blob", "-p", f"{fwd}:8080", "-p", f"127.0.0.1:{relay}:8080", IMAGE, "sh",
               "-c", serve, env=env)
        deadline = time.monotonic() + 600
        while subprocess.run(["docker", "exec", "blob", "test", "-e", "/ready"], env=env).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the 256 MiB file was not written in time")
            time.sleep(1)
        start = time.monotonic()
        with subprocess.Popen(["docker", "cp", "blob:/blob", "-"], stdout=subprocess.PIPE, env=env) as cp:
            got = 0
            while chunk := cp.stdout.read(1 << 20):
                got += len(chunk)
        engine = got / (time.monotonic() - start) / 1e6
        through = download(fwd, size)
        over_ssh = download(relay, size)
        path = json.loads(machine("ports", name, "--json", env=env).stdout)["path"]
        result["throughput_MBps"] = {"engine_port_docker_cp": round(engine, 1), f"forward_{path}": round(through, 1),
                                     "ssh_relay": round(over_ssh, 1),
                                     "forward_vs_engine": round(through / engine, 2) if engine else None}
    finally:
        result["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
        machine("rm", "-y", "-f", name, env=env)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
