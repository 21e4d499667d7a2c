"""The create-in-progress marker: `<machine dir>/.creating`, written first by a create and removed last.

A create that was killed (kill -9, power loss) cannot undo itself; the marker, naming a creator process that
is no longer alive, is how every later command knows the machine is half-made ("create did not finish:
remove it with machine rm NAME") instead of showing it as healthy.
"""

from __future__ import annotations

import os
import stat

from machine import machinedir
from machine.pids import pid_alive

TYPE_CHECKING = False  # checking a marker (every config read) imports only os and stat; writing one, more
if TYPE_CHECKING:
    from pathlib import Path

MARKER = machinedir.CREATING


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (Linux clock ticks since boot), to tell a reused pid from the creator."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def begin(machine_dir: Path) -> None:
    import json

    from machine.atomicfile import write_atomic

    write_atomic(machine_dir / MARKER, json.dumps({"pid": os.getpid(), "start": _start_ticks(os.getpid())}))


def finish(machine_dir: Path) -> None:
    try:
        os.unlink(machine_dir / MARKER)
    except FileNotFoundError:
        pass


def present(machine_dir: str | Path) -> bool:
    return os.path.lexists(os.path.join(machine_dir, MARKER))


def abandoned(machine_dir: str | Path) -> bool:
    """True when a marker is there and the process that wrote it is gone (or is not that process any more)."""
    path = os.path.join(machine_dir, MARKER)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return True  # not a file we wrote: its create surely did not finish cleanly
        import json

        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read())
        pid, start = int(data["pid"]), data.get("start")
    except OSError:
        return False  # no marker, or a folder we cannot read (the config read reports that)
    except (ValueError, KeyError, TypeError):
        return True  # a marker we cannot parse: its create surely did not finish cleanly
    if pid == os.getpid():
        return False
    if not pid_alive(pid):
        return True
    return start is not None and _start_ticks(pid) not in (None, start)
