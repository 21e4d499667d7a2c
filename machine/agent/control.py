"""Start, find and stop a machine's agent; read and write its status file. Standard library only: `machine ls`
and `machine ports` use it without importing drivers, SSH or docker libraries.

Files in the machine directory: `agent.pid` (the running agent), `agent.log` (its log, cut when it grows past
LOG_LIMIT at a start) and `ports.json` (what it forwards and what failed, rewritten atomically on each change).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from machine import machinedir, process
from machine.atomicfile import write_atomic

PID_FILE = machinedir.AGENT_PID
LOG_FILE = machinedir.AGENT_LOG
STATUS_FILE = machinedir.AGENT_STATUS
MODULE = "machine.agent"
LOG_LIMIT = 1 << 20
STOP_GRACE = 5.0  # seconds the agent gets to remove its forwards before it is killed


def wanted(cfg: Any, driver: Any) -> bool:
    """Whether a machine has an agent: its guest is reached over SSH, its driver has a forward path and the
    docker client reaches its engine through TLS (the agent watches the engine the same way)."""
    return bool(driver.features.managed_engine and driver.port_forward_path()
                and cfg.engine.get("transport", "tls") == "tls")


def agent_pid(machine_dir: Path) -> int | None:
    """The pid of this machine's running agent, or None (a stale pid file or a reused pid does not count)."""
    try:
        pid = int((Path(machine_dir) / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if not process.pid_alive(pid):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if sys.platform.startswith("linux") and cmdline.exists():
        try:
            text = cmdline.read_bytes()
        except OSError:
            return None
        if MODULE.encode() not in text or str(Path(machine_dir).resolve()).encode() not in text:
            return None  # the pid now belongs to another process
    return pid


def running(machine_dir: Path) -> bool:
    return agent_pid(machine_dir) is not None


def start(store_root: Path, name: str, machine_dir: Path) -> tuple[int, bool]:
    """Start the agent unless it runs: (pid, True when it was started now). It is detached (its own session):
    it outlives the command that started it."""
    machine_dir = Path(machine_dir).resolve()  # the agent runs in the machine dir: no relative paths
    pid = agent_pid(machine_dir)
    if pid is not None:
        return pid, False
    log = machine_dir / LOG_FILE
    try:
        if log.stat().st_size > LOG_LIMIT:
            log.replace(log.with_name(LOG_FILE + ".1"))
    except OSError:
        pass
    pid = process.spawn([sys.executable, "-m", MODULE, "--store", str(Path(store_root).resolve()), "--name", name,
                         "--dir", str(machine_dir)], log_file=log, cwd=machine_dir)
    write_atomic(machine_dir / PID_FILE, f"{pid}\n")
    return pid, True


def stop(machine_dir: Path) -> bool:
    """Stop the agent (it removes its forwards first); True when one was running."""
    machine_dir = Path(machine_dir)
    pid = agent_pid(machine_dir)
    if pid is not None:
        process.terminate_pid(pid, STOP_GRACE)
    try:
        (machine_dir / PID_FILE).unlink(missing_ok=True)
    except NotADirectoryError:  # a damaged store: the machine "folder" is a file; it has no agent
        pass
    return pid is not None


def read_status(machine_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(machine_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_status(machine_dir: Path, data: dict[str, Any]) -> None:
    write_atomic(Path(machine_dir) / STATUS_FILE, json.dumps(data, indent=1) + "\n")
