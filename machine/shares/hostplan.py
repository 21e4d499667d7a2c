"""The host's side of shared folders, for the orchestrator: the device entries a driver gets, which shares a
create keeps on this host, and the errors the guest reported at boot. Cheap to import (no driver, no SSH)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine.errors import HostNotUsable


def device_entries(shares: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DriverContext.shares: each saved share with its device tag (msh0, msh1...)."""
    from machine.shares import spec

    return [{"tag": spec.tag(i), **s.to_dict()} for i, s in enumerate(spec.from_config(shares))]


def require_mechanism(driver: str, declared: tuple[str, ...], machine_choice: str = "auto") -> None:
    """HostNotUsable unless this host has one of the driver's mechanisms (the machine's choice, if it made one)."""
    from machine.shares import mechanisms

    if mechanisms.choose(declared, machine_choice=machine_choice) is None:
        explained = mechanisms.explain(declared, machine_choice=machine_choice)
        raise HostNotUsable(f"Driver {driver!r} cannot share folders on this host: {explained}",
                            "Create the machine without --share (or with --no-share); 'machine doctor' says more.")


def keep_for_create(driver: str, declared: tuple[str, ...], shares: list[dict[str, Any]], with_default: bool,
                    warn: Callable[[str], None], machine_choice: str = "auto") -> list[dict[str, Any]]:
    """The shares a create keeps: all when this host has a mechanism for the driver; without one, the default
    home share alone is dropped with a warning, explicit shares are refused (before anything is made)."""
    if not shares:
        return []
    from machine.shares import mechanisms

    if mechanisms.choose(declared, machine_choice=machine_choice) is not None:
        return list(shares)
    if with_default and len(shares) == 1:
        warn(f"the home folder is not shared: driver {driver} cannot share folders here "
             f"({mechanisms.explain(declared, machine_choice=machine_choice)})")
        return []
    require_mechanism(driver, declared, machine_choice)
    return []


def boot_errors(entries: list[dict[str, Any]], console_log: Path | None, mechanism: str = "") -> list[str]:
    """"share HOST: REASON" for each share the guest could not mount at this boot (none for a mechanism the
    host's agent mounts after boot: the guest found no device for them, as expected; the agent reports)."""
    from machine.shares import boot, mechanisms

    if mechanism in mechanisms.HOST_SERVED:
        return []
    return boot.errors(console_log, {e["tag"]: e["host"] for e in entries})


HOST_SERVED_WAIT = 90.0  # seconds a start waits for the agent to mount reverse-sftp shares (TCG guests are slow)


def wait_host_served(machine_dir: Path, mechanism: str, entries: list[dict[str, Any]], agent_runs: bool,
                     timeout: float = HOST_SERVED_WAIT) -> list[str] | None:
    """For a mechanism the agent mounts after boot: wait until its status says each share is mounted (or failed)
    and return "share HOST: REASON" for those that are not mounted. None for other mechanisms."""
    import time

    from machine.shares import mechanisms

    if mechanism not in mechanisms.HOST_SERVED or not entries:
        return None
    if not agent_runs:
        return [f"share {e['host']}: not mounted ({mechanism} needs the machine's agent, which does not run for "
                f"this machine)" for e in entries]
    from machine.agent import control

    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        status = control.read_status(machine_dir) or {}
        if status.get("pid") == control.agent_pid(machine_dir):  # not a previous agent's last word
            rows = list(status.get("shares") or [])
            states = {r.get("host"): r.get("state") for r in rows}
            if all(states.get(e["host"]) in ("mounted", "failed") for e in entries):
                break
        time.sleep(0.3)
    found = {r.get("host"): r for r in rows}
    out = []
    for e in entries:
        r = found.get(e["host"]) or {}
        if r.get("state") != "mounted":
            out.append(f"share {e['host']}: {r.get('error') or 'not mounted yet'} ({mechanism}; the agent keeps "
                       f"trying, see its log)")
    return out
