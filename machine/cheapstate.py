"""A cheap answer to "is this machine running?" for env, config and url, which run inside `eval $(...)`
and must answer at once: no driver import, no QMP, SSH or hypervisor call.

A driver that can tell from a file declares it as data, in what it saves (`cfg.driver_data`):
`pid_file`, relative to the machine directory, names a file holding the pid of the VM's process.
The machine is stopped when that file is missing or empty, or its process is gone (or, on Linux, is
some other process, without the machine directory in its command line). Drivers that declare nothing
are not checked here (their state needs the hypervisor): the saved URL is given as it is."""

from __future__ import annotations

import os
import sys

from machine.errors import MachineError
from machine.pids import pid_alive

TYPE_CHECKING = False  # os and sys only: env/config/url ask this on every call
if TYPE_CHECKING:
    from pathlib import Path

    from machine.quickread import QuickStore, SavedConfig
    from machine.store import MachineConfig, Store


class NotRunning(MachineError):
    """env/config/url on a machine whose VM is not running (exit 1, as docker-machine's 'Host is not running')."""


def surely_stopped(machine_dir: str | Path, driver_data: dict) -> bool:
    """True only when the declared pid file shows the VM process is not running."""
    pid_file = driver_data.get("pid_file")
    if not pid_file:
        return False
    try:
        with open(os.path.join(machine_dir, str(pid_file))) as f:
            pid = int(f.read().strip())
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return True
    if not pid_alive(pid):
        return True
    cmdline = f"/proc/{pid}/cmdline"
    if sys.platform.startswith("linux") and os.path.exists(cmdline):
        try:
            with open(cmdline, "rb") as f:
                return str(machine_dir).encode() not in f.read()
        except OSError:
            return False
    return False


def require_running(store: Store | QuickStore, cfg: MachineConfig | SavedConfig) -> None:
    """Raise NotRunning, with the command that starts it, when the cheap check says the machine is stopped."""
    if surely_stopped(store.machine_dir(cfg.name), cfg.driver_data):
        raise NotRunning(f"Machine {cfg.name!r} is not running (its engine cannot answer)",
                         f"Start it with: machine start {cfg.name}")
