"""Getting ISO files onto the Hyper-V host (see README.md, "ISO transfer").

- `upload`: base64 chunks appended to `<dest>.part` by repeated `iso-chunk` scripts, each sized to
  fit the Windows command-line limit; every chunk names the offset it expects, so a lost answer
  or an interrupted upload resumes from the size the host reports; `iso-finish` checks the sha256
  and renames the part file. A destination that already holds a file with that digest is kept.
- `download`: the host fetches a URL itself (Invoke-WebRequest) and checks the sha256.
Boot ISOs are cached on the host by digest (<ProgramData>\\machine\\iso-cache\\sha256-<hex>.iso).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from machine.errors import DriverError

from . import scripts
from .runner import Runner

log = logging.getLogger("machine.drivers.hyperv")
ProgressFn = Callable[[int, int], None]
MAX_RESYNC = 5


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def chunk_size(dest: str) -> int:
    """Raw bytes per iso-chunk script for this destination path (largest that fits the limit)."""
    room = scripts.max_payload("iso-chunk", path=dest, offset=10**12, data="")
    return (room // 4) * 3


def cached_name(digest: str) -> str:
    return f"sha256-{digest}.iso"


def stderr_progress(label: str) -> ProgressFn:
    """Progress on stderr: a line at every tenth of the transfer."""
    state = {"shown": -1}

    def report(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth != state["shown"]:
            state["shown"] = tenth
            pct = done * 100 // max(total, 1)
            sys.stderr.write(f"  {label}: {pct}% ({done / 2**20:.1f}/{total / 2**20:.1f} MiB)\n")
            sys.stderr.flush()

    return report


def upload(runner: Runner, local: Path, dest: str, digest: str | None = None,
           progress: ProgressFn | None = None) -> str:
    """Put `local` at host path `dest` (skipped when it is there with the same sha256). Returns
    'present' or 'uploaded'."""
    digest = digest or sha256_file(local)
    total = local.stat().st_size
    probe = runner.call("iso-probe", path=dest, sha256=digest)
    if probe.get("present"):
        log.info("%s already on the host with sha256 %s", dest, digest)
        return "present"
    step = chunk_size(dest)
    offset = int(probe.get("part_size") or 0)
    if offset > total:
        offset = 0
    resyncs = 0
    with open(local, "rb") as f:
        while True:
            f.seek(offset)
            data = f.read(step)
            if not data and offset > 0:
                break
            answer = runner.call("iso-chunk", path=dest, offset=offset,
                                 data=base64.b64encode(data).decode("ascii"))
            if int(answer.get("written", 0)) != len(data):
                # The host's part file has another size (an earlier answer was lost, or another
                # upload interfered): continue from what the host has, or restart.
                resyncs += 1
                if resyncs > MAX_RESYNC:
                    raise DriverError(f"Uploading {local.name} to {dest} keeps losing its place",
                                      "Retry; make sure no other upload of this file runs.")
                reported = int(answer.get("size", 0))
                offset = reported if 0 < reported <= total else 0
                continue
            offset = int(answer["size"])
            if progress:
                progress(offset, total)
            if offset >= total:
                break
    runner.call("iso-finish", path=dest, sha256=digest)
    return "uploaded"


def download(runner: Runner, url: str, dest: str, digest: str) -> str:
    """Have the host download `url` to `dest` (skipped when present with this sha256)."""
    probe = runner.call("iso-probe", path=dest, sha256=digest)
    if probe.get("present"):
        return "present"
    runner.call("iso-download", url=url, path=dest, sha256=digest)
    return "downloaded"
