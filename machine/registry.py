"""Driver registry: built-in drivers (sub-packages of machine.drivers) and third-party ones
(entry points in group `machine.drivers`), loaded lazily on first use.

A built-in driver package `machine/drivers/<name>/` exposes `DRIVER`, its Driver subclass.
An entry point `name = "pkg.module:Class"` registers a third-party driver.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING

from machine.errors import UsageError

if TYPE_CHECKING:
    from machine.driver import Driver

ENTRY_POINT_GROUP = "machine.drivers"


@cache
def _builtin() -> dict[str, str]:
    import machine.drivers as pkg

    return {m.name: f"machine.drivers.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg}


@cache
def _third_party() -> dict[str, object]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    return sorted(set(_builtin()) | set(_third_party()))


@cache
def get(name: str) -> type[Driver]:
    """The Driver class called `name`; UsageError listing the known drivers if there is none."""
    from machine.driver import Driver

    if name in _builtin():
        cls = getattr(importlib.import_module(_builtin()[name]), "DRIVER", None)
    elif name in _third_party():
        cls = _third_party()[name].load()  # type: ignore[attr-defined]
    else:
        raise UsageError(f"Driver {name!r} not found", f"Known drivers: {', '.join(names())}.")
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise UsageError(f"Driver {name!r} does not provide a machine Driver class",
                         "Reinstall the package that provides it.")
    if not cls.name:
        cls.name = name
    return cls
