"""What a config.json in machine's own format must hold to be used: its schema version, name and driver, and
the types of the fields other code relies on. `Store.load` checks every config with `check`, and the read-only
commands' fast path (machine.savedconfig) checks the same way before it answers, so both refuse the same files
with the same words. Imports nothing but machine.errors and machine.names."""

from __future__ import annotations

from machine.errors import ConfigError
from machine.names import NAME_RE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

SCHEMA_VERSION = 1
DICT_FIELDS = ("driver_options", "driver_data", "engine", "ssh", "swarm", "labels")
LIST_FIELDS = ("shares", "share_errors")
DAMAGED = "The file is damaged: restore it, or remove the machine with 'machine rm -f'."


def check(data: dict[str, Any], source: str | Path) -> None:
    """Raise ConfigError (naming `source`, the file) when `data`, a parsed config.json of machine's format, cannot
    be used: no valid or a newer schema_version, no name or driver, a field of the wrong type."""
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(
            f"Config file {source} has no valid schema_version (a whole number from 1)",
            "The file is damaged: restore it from a backup, or remove the machine with 'machine rm -f'.",
        )
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"Config file {source} has schema version {version}, newer than this machine "
            f"(knows up to {SCHEMA_VERSION})",
            "Upgrade machine to a release that knows this config version.",
        )
    missing = [k for k in ("name", "driver") if not isinstance(data.get(k), str)]
    if missing:
        raise ConfigError(f"Config file {source} lacks {', '.join(missing)}", DAMAGED)
    for key in DICT_FIELDS:
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"Config file {source}: '{key}' must be an object", DAMAGED)
    _check_values(data, source)
    if not isinstance(data.get("share_mechanism", ""), str):
        raise ConfigError(f"Config file {source}: 'share_mechanism' must be a string",
                          "Fix it with 'machine set NAME --share-mechanism auto', or remove the machine.")
    for key in LIST_FIELDS:
        if key in data and not isinstance(data[key], list):
            raise ConfigError(f"Config file {source}: '{key}' must be a list", DAMAGED)


def _check_values(values: dict[str, Any], source: str | Path) -> None:
    """Fields other code relies on: the engine port, the URL, the cluster name."""
    engine = values.get("engine") or {}
    port = engine.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
        raise ConfigError(f"Config file {source}: engine port must be a number from 1 to 65535", DAMAGED)
    if not isinstance(engine.get("url", ""), str | None):
        raise ConfigError(f"Config file {source}: engine url must be a string", DAMAGED)
    cluster = (values.get("swarm") or {}).get("cluster")
    if cluster is not None and cluster != "" and not (isinstance(cluster, str) and NAME_RE.fullmatch(cluster)):
        raise ConfigError(f"Config file {source}: swarm cluster must be a cluster name", DAMAGED)
