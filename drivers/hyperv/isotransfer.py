"""Getting ISO files onto the Hyper-V host (see README.md, "ISO transfer").

- `upload` over WinRM streams base64 lines into one `iso-stream` script's stdin (WinRM Send,
  48 KiB per message); without streaming (or with stream=False) it appends base64 chunks to
  `<dest>.part` by repeated `iso-chunk` scripts, each sized to fit the Windows command-line limit.
  Both name the offset they expect, so a lost answer or an interrupted upload resumes from the size
  the host reports; `iso-finish` checks the sha256 and renames the part file. A destination that
  already holds a file with that digest is kept.
- `download`: the host fetches a URL itself (Invoke-WebRequest) and checks the sha256.
Boot ISOs are cached on the host by digest (<ProgramData>\\machine\\iso-cache\\sha256-<hex>.iso).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from machine.errors import DriverError

from . import scripts
from .runner import Runner

log = logging.getLogger("machine.drivers.hyperv")
ProgressFn = Callable[[int, int], None]
MAX_RESYNC = 5
# Raw bytes per WinRM Send: a 64 KiB base64 line, about 87 KiB in the envelope (limit 150 KiB).
STREAM_CHUNK = 48 * 1024


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
           progress: ProgressFn | None = None, stream: bool | None = None) -> str:
    """Put `local` at host path `dest` (skipped when it is there with the same sha256). Returns
    'present' or 'uploaded'. stream: use stdin streaming (default: when the runner can)."""
    digest = digest or sha256_file(local)
    total = local.stat().st_size
    probe = runner.call("iso-probe", path=dest, sha256=digest)
    if probe.get("present"):
        log.info("%s already on the host with sha256 %s", dest, digest)
        return "present"
    offset = int(probe.get("part_size") or 0)
    if offset > total:
        offset = 0
    if runner.can_stream if stream is None else stream:
        _stream(runner, local, dest, offset, total, progress)
    else:
        _chunks(runner, local, dest, offset, total, progress)
    runner.call("iso-finish", path=dest, sha256=digest)
    return "uploaded"


def _resync(local: Path, dest: str, answer: dict, total: int, resyncs: int) -> int:
    """The offset to continue from after the host reported another size than expected."""
    if resyncs > MAX_RESYNC:
        raise DriverError(f"Uploading {local.name} to {dest} keeps losing its place",
                          "Retry; make sure no other upload of this file runs.")
    reported = int(answer.get("size", 0))
    return reported if 0 < reported <= total else 0


def _stream(runner: Runner, local: Path, dest: str, offset: int, total: int, progress: ProgressFn | None) -> None:
    resyncs = 0
    while True:
        answer = runner.call_with_input("iso-stream", _lines(local, offset, total, progress), path=dest, offset=offset)
        if int(answer.get("size", -1)) == total and int(answer.get("written", 0)) == total - offset:
            return
        resyncs += 1
        offset = _resync(local, dest, answer, total, resyncs)


def _lines(local: Path, start: int, total: int, progress: ProgressFn | None) -> Iterator[bytes]:
    """The file from `start` as base64 lines of STREAM_CHUNK bytes each."""
    with open(local, "rb") as f:
        f.seek(start)
        done = start
        while data := f.read(STREAM_CHUNK):
            yield base64.b64encode(data) + b"\r\n"
            done += len(data)
            if progress:
                progress(done, total)


def _chunks(runner: Runner, local: Path, dest: str, offset: int, total: int, progress: ProgressFn | None) -> None:
    step = chunk_size(dest)
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
                offset = _resync(local, dest, answer, total, resyncs)
                continue
            offset = int(answer["size"])
            if progress:
                progress(offset, total)
            if offset >= total:
                break


def download(runner: Runner, url: str, dest: str, digest: str) -> str:
    """Have the host download `url` to `dest` (skipped when present with this sha256)."""
    probe = runner.call("iso-probe", path=dest, sha256=digest)
    if probe.get("present"):
        return "present"
    runner.call("iso-download", url=url, path=dest, sha256=digest)
    return "downloaded"
