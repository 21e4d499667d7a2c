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


def require_mechanism(driver: str, declared: tuple[str, ...]) -> None:
    """HostNotUsable unless this host has one of the driver's mechanisms."""
    from machine.shares import mechanisms

    if mechanisms.choose(declared) is None:
        raise HostNotUsable(f"Driver {driver!r} cannot share folders on this host: {mechanisms.explain(declared)}",
                            "Create the machine without --share (or with --no-share); 'machine doctor' says more.")


def keep_for_create(driver: str, declared: tuple[str, ...], shares: list[dict[str, Any]], with_default: bool,
                    warn: Callable[[str], None]) -> list[dict[str, Any]]:
    """The shares a create keeps: all when this host has a mechanism for the driver; without one, the default
    home share alone is dropped with a warning, explicit shares are refused (before anything is made)."""
    if not shares:
        return []
    from machine.shares import mechanisms

    if mechanisms.choose(declared) is not None:
        return list(shares)
    if with_default and len(shares) == 1:
        warn(f"the home folder is not shared: driver {driver} cannot share folders here "
             f"({mechanisms.explain(declared)})")
        return []
    require_mechanism(driver, declared)
    return []


def boot_errors(entries: list[dict[str, Any]], console_log: Path | None) -> list[str]:
    """"share HOST: REASON" for each share the guest could not mount at this boot."""
    from machine.shares import boot

    return boot.errors(console_log, {e["tag"]: e["host"] for e in entries})
