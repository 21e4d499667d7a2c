"""What the guest said about its shared folders at boot: our machine OS writes one line per share on the serial
console, `machine-os: share-mounted: TAG PATH MECHANISM` or `machine-os: share-failed: TAG PATH: REASON`."""

from __future__ import annotations

from pathlib import Path

MOUNTED = "machine-os: share-mounted: "
FAILED = "machine-os: share-failed: "


def report(console_log: Path | None) -> tuple[list[str], list[str]]:
    """(mounted lines "TAG PATH MECHANISM", failed lines "TAG PATH: REASON") from the current boot's console."""
    mounted: list[str] = []
    failed: list[str] = []
    if console_log is None:
        return mounted, failed
    try:
        text = console_log.read_text(errors="replace")
    except OSError:
        return mounted, failed
    for line in text.splitlines():
        line = line.strip("\r\x00 ")
        if line.startswith(MOUNTED):
            mounted.append(line[len(MOUNTED):])
        elif line.startswith(FAILED):
            failed.append(line[len(FAILED):])
    return mounted, failed


def errors(console_log: Path | None, hosts: dict[str, str]) -> list[str]:
    """The failed shares as the user knows them: "share /home/me: REASON" (`hosts` maps tag -> host folder)."""
    out = []
    for line in report(console_log)[1]:
        tag, _, rest = line.partition(" ")
        reason = rest.partition(": ")[2] or rest
        out.append(f"share {hosts.get(tag, tag)}: {reason}")
    return out
