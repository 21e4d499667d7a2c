"""The machine store: `<root>/machines/<name>/config.json`, `<root>/certs/`, `<root>/cache/`.

The machine directory is the machine's state (as in Lima): its config plus whatever files the
driver keeps there (disks, pidfiles, sockets, logs). Status is never stored: it is asked of the
driver. Config writes are atomic; `Store.lock(name)` serialises commands on one machine.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from machine import configfile, configschema, createmarker, machinedir, sizeunits
from machine.atomicfile import ensure_dir, write_atomic
from machine.configschema import SCHEMA_VERSION
from machine.errors import ConfigError, MachineError
from machine.filelock import FileLock
from machine.names import validate_name

# docker-machine's top-level keys (machine.dockermachine.record.HEADER_KEYS)
DOCKER_MACHINE_KEYS = ("ConfigVersion", "Driver", "DriverName", "HostOptions", "Name")


def default_root() -> Path:
    env = os.environ.get("MACHINE_STORAGE_PATH")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".docker" / "machine"


@dataclass
class MachineConfig:
    """What is saved for one machine. Drivers own `driver_options` (what the user chose) and
    `driver_data` (what the driver recorded at create: ports, domain names...)."""

    name: str
    driver: str
    driver_options: dict[str, Any] = field(default_factory=dict)
    driver_data: dict[str, Any] = field(default_factory=dict)
    # engine: transport ("tls" | "ssh"), url, port, options (labels, env, ...), tls_sans
    engine: dict[str, Any] = field(default_factory=dict)
    # ssh: user, host_key (pinned "type base64"), key ("id_ed25519" in the machine dir)
    ssh: dict[str, Any] = field(default_factory=dict)
    swarm: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # shared folders: [{"host": ..., "guest": ..., "ro": bool}] (machine.shares.spec); share_errors: what the
    # guest reported at the last boot ("share /home/me: ...")
    shares: list[dict[str, Any]] = field(default_factory=list)
    share_errors: list[str] = field(default_factory=list)
    # "auto" (the fastest mechanism the host serves and the image mounts) or one the driver declares
    share_mechanism: str = "auto"
    created_at: str = ""
    # "docker-machine" for a machine `machine import` converted (its docker-machine keys are then kept as
    # they were, so docker-machine still drives it)
    imported_from: str = ""
    schema_version: int = SCHEMA_VERSION
    # docker-machine's keys (ConfigVersion, Driver, DriverName, HostOptions, Name), written after ours so
    # docker-machine reads the file as its own instead of "migrating" (rewriting) it: see
    # machine.dockermachine.header
    docker_machine: dict[str, Any] = field(default_factory=dict)
    # Not saved: where a config that is not machine's own file came from ({"format": "docker-machine",
    # "driver_name", "supported", "path"}). Such a config is read as it is and never written back.
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def managed_engine(self) -> bool:
        """machine provisions this machine's engine over SSH (its driver's `features.managed_engine`), told from
        the store alone for read-only commands: create saves SSH settings for such machines, none for an
        existing engine."""
        return bool(self.ssh)

    def to_json(self) -> str:
        data = asdict(self)
        header = data.pop("docker_machine")
        data.pop("origin")
        data["driver_options"] = sizeunits.mark_saved(data["driver_options"])
        data = {"schema_version": data.pop("schema_version"), **data, **header}
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> MachineConfig:
        configschema.check(data, source)
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known and k not in ("docker_machine", "origin")}
        from_docker_machine = [k for k in DOCKER_MACHINE_KEYS if k in data]
        if from_docker_machine:
            values["docker_machine"] = {k: data[k] for k in from_docker_machine}
        if isinstance(values.get("driver_options"), dict):  # older names and units -> today's (MiB)
            values["driver_options"] = sizeunits.migrate_saved(values["driver"], values["driver_options"])
        return cls(**values)


class Store:
    """One storage root. Cheap to construct: touches the disk only when used."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else default_root()

    @property
    def machines_dir(self) -> Path:
        return self.root / "machines"

    @property
    def certs_dir(self) -> Path:
        return self.root / "certs"

    @property
    def cache_dir(self) -> Path:
        return ensure_dir(self.root / "cache")

    def machine_dir(self, name: str) -> Path:
        return self.machines_dir / validate_name(name)

    def config_path(self, name: str) -> Path:
        return self.machine_dir(name) / machinedir.CONFIG

    def exists(self, name: str) -> bool:
        return self.config_path(name).is_file()

    def names(self) -> list[str]:
        """Every machine in the store, readable or not: each folder (or file or symlink in its place) under
        machines/. Commands that load them report the damaged ones (and invalid names)."""
        try:
            entries = list(os.scandir(self.machines_dir))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise ConfigError(f"Cannot list the machines in {self.machines_dir}: {e.strerror or e}",
                              "Check the folder's permissions (-s PATH or MACHINE_STORAGE_PATH chooses the store).") \
                from None
        return sorted(e.name for e in entries if not e.name.startswith("."))  # not lock or temporary files

    def load(self, name: str, *, unfinished: bool = False) -> MachineConfig:
        """The machine's config. Never blocks (a FIFO is refused, not opened) and never raises anything but
        NotFound or ConfigError. A machine whose create was killed is a ConfigError unless `unfinished`."""
        directory = self.machine_dir(name)
        if not unfinished and createmarker.abandoned(directory):
            raise ConfigError(f"Machine {name!r} is broken: its create did not finish (the command was killed)",
                              f"Remove it with: machine rm {name}")
        path = directory / machinedir.CONFIG
        raw = configfile.read_text(name, directory)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"Config file {path} is corrupt: {e.msg} at line {e.lineno} column {e.colno}",
                "Fix or restore the file, or remove the machine with 'machine rm -f " + name + "'.",
            ) from None
        except (RecursionError, ValueError) as e:  # nesting deeper than the parser's stack, a 5,000-digit number
            why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise ConfigError(f"Config file {path} is corrupt: {why}",
                              "Fix or restore the file, or remove the machine with 'machine rm -f " + name + "'.",
                              ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"Config file {path} is corrupt: not a JSON object",
                              "Fix or restore the file, or remove the machine with 'machine rm -f'.")
        if "schema_version" not in data and "ConfigVersion" in data:  # docker-machine's record, read as it is
            from machine.dockermachine.record import config_fields

            try:
                cfg = MachineConfig(**config_fields(data, name, path))
            except MachineError:
                raise
            except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as e:
                raise ConfigError(f"docker-machine config {path} cannot be read: {e}",
                                  f"Fix or restore it, or remove the machine with 'machine rm -f {name}'.") from None
            pin = self.host_key_path(name)
            if pin.is_file():
                cfg.ssh["host_key"] = pin.read_text(encoding="utf-8").strip()
            return cfg
        cfg = MachineConfig.from_dict(data, path)
        if cfg.name != name:
            raise ConfigError(
                f"Config file {path} is for machine {cfg.name!r}, not {name!r}",
                "Machine directories cannot be renamed by hand; rename it back.",
            )
        return cfg

    def host_key_path(self, name: str) -> Path:
        """Where the SSH host key of a docker-machine machine is pinned: beside its lock file, outside its
        folder (docker-machine's files are not written; docker-machine ignores dot files there)."""
        return self.machines_dir / f".{validate_name(name)}{machinedir.HOST_KEY_SUFFIX}"

    def save(self, cfg: MachineConfig) -> None:
        if cfg.origin:  # docker-machine's record: never rewritten (machine import converts it); keep our pin
            key = str(cfg.ssh.get("host_key") or "")
            pin = self.host_key_path(cfg.name)
            if key and (not pin.is_file() or pin.read_text(encoding="utf-8").strip() != key):
                write_atomic(pin, key + "\n")
            return
        directory = self.make_machine_dir(cfg.name)
        if not cfg.created_at:
            from datetime import UTC, datetime  # here: read-only commands never save

            cfg.created_at = datetime.now(UTC).isoformat(timespec="seconds")
        from machine.dockermachine.header import refresh

        refresh(self, cfg)
        write_atomic(directory / machinedir.CONFIG, cfg.to_json())

    def make_machine_dir(self, name: str) -> Path:
        ensure_dir(self.machines_dir)
        return ensure_dir(self.machine_dir(name))

    def remove(self, name: str) -> None:
        """Delete the machine directory (its config and every file the driver kept there). A file or symlink
        in its place is unlinked; folders the owner made unreadable are made readable first."""
        directory = self.machine_dir(name)
        try:
            if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
                directory.unlink()
            else:
                configfile.remove_tree(directory)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ConfigError(f"Cannot remove {directory}: {e.strerror or e}",
                              "Check its permissions (as its owner: chmod -R u+rwx), then run machine rm again.") \
                from None
        self.host_key_path(name).unlink(missing_ok=True)

    @contextmanager
    def lock(self, name: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold `name`'s lock (re-entrant within this process, so `use` can hold it while a certificate renewal
        takes it again). The lock file lives beside the machine dirs so it works before the machine dir exists
        (create) and after it is gone (rm); it is deleted on release when the machine does not exist."""
        ensure_dir(self.machines_dir)
        lock_path = self.machines_dir / f".{validate_name(name)}{machinedir.LOCK_SUFFIX}"
        key = (threading.get_ident(), str(lock_path.absolute()))
        if key in _HELD:
            _HELD[key] += 1
            try:
                yield
            finally:
                _HELD[key] -= 1
            return
        lock = FileLock(lock_path, timeout=timeout, what=f"Machine {name!r}")
        lock.acquire()
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            if not os.path.lexists(self.machine_dir(name)):
                lock.unlink()  # no stale .NAME.lock for removed or never-made machines
            lock.release()


# lock files each thread of this process holds, with their nesting depth
_HELD: dict[tuple[int, str], int] = {}
