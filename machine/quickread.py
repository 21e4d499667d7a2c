"""The store and the docker client's current context as the read-only commands' fast path (machine.fastpath)
reads them on POSIX, with plain string paths and without machine.store's imports (dataclasses, pathlib, typing,
threading: together more than the interpreter's own start).

It reads only what it can read exactly as machine.store and machine.client.dockercontext do, with their own
checks (machine.configfile, machine.createmarker, machine.configschema), so errors are theirs word for word.
Anything else (a docker-machine record, a config that does not parse, a name that does not match, a lock another
command holds, a path pathlib would spell differently) raises NotQuick before anything is printed, and the fast
path asks machine.store instead (tests/test_fastpath.py compares both with the click CLI).
"""

from __future__ import annotations

import json
import os

from machine import configfile, configschema, createmarker, machinedir
from machine.names import validate_name

PRIVATE_DIR = 0o700  # as machine.atomicfile.ensure_dir makes the machines folder


class NotQuick(Exception):
    """machine.store (or dockercontext) must answer this one."""


def pure_path(path: str) -> str:
    """`path` as str(PurePosixPath(path)) spells it: no empty or `.` parts, `//` kept at the start only."""
    if path.startswith("//") and not path.startswith("///"):
        root = "//"
    else:
        root = "/" if path.startswith("/") else ""
    return root + "/".join(p for p in path.split("/") if p and p != ".") or "."


def _expanded(path: str) -> str:
    """Path(path).expanduser(), or NotQuick where pathlib would raise."""
    if path.startswith("~"):
        path = os.path.expanduser(path)
        if path.startswith("~"):
            raise NotQuick
    return path


def storage_root(storage: str | None) -> str:
    """machine.store.default_root() / Path(storage).expanduser(), as a string."""
    if os.name != "posix":  # pragma: no cover - other path rules: machine.store answers
        raise NotQuick
    if storage:
        return pure_path(_expanded(storage))
    env = os.environ.get("MACHINE_STORAGE_PATH")
    if env:
        return pure_path(_expanded(env))
    return pure_path(os.path.join(os.path.expanduser("~"), ".docker", "machine"))


class SavedConfig:
    """The fields of a machine's own config.json (machine.store.MachineConfig) the read-only commands read."""

    origin: dict = {}  # noqa: RUF012 - never written: machine's own format is not a docker-machine record

    def __init__(self, data: dict) -> None:
        self.name: str = data["name"]
        self.driver: str = data["driver"]
        self.engine: dict = data.get("engine") or {}
        self.driver_data: dict = data.get("driver_data") or {}
        self.ssh: dict = data.get("ssh") or {}

    @property
    def managed_engine(self) -> bool:
        return bool(self.ssh)


class QuickStore:
    """machine.store.Store's read side (machines_dir, machine_dir, exists, names, load, lock) on string paths."""

    def __init__(self, storage: str | None) -> None:
        self.root = storage_root(storage)
        self.machines_dir = os.path.join(self.root, "machines")

    def machine_dir(self, name: str) -> str:
        return os.path.join(self.machines_dir, validate_name(name))

    def exists(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.machine_dir(name), machinedir.CONFIG))

    def names(self) -> list[str]:
        try:
            entries = list(os.scandir(self.machines_dir))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError:
            raise NotQuick from None
        return sorted(e.name for e in entries if not e.name.startswith("."))

    def load(self, name: str) -> SavedConfig:
        directory = self.machine_dir(name)
        if createmarker.abandoned(directory):
            raise NotQuick
        raw = configfile.read_text(name, directory)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise NotQuick from None
        if not isinstance(data, dict) or "schema_version" not in data:  # a docker-machine record, or damaged
            raise NotQuick
        configschema.check(data, os.path.join(directory, machinedir.CONFIG))
        if data["name"] != name:
            raise NotQuick
        return SavedConfig(data)

    def lock(self, name: str) -> _Lock:
        return _Lock(os.path.join(self.machines_dir, f".{validate_name(name)}{machinedir.LOCK_SUFFIX}"),
                     self.machine_dir(name), self.machines_dir)


class _Lock:
    """Store.lock(name) when nobody holds it (the lock file made, held and removed as machine.filelock does);
    NotQuick when another command holds it (machine.store then waits for it)."""

    def __init__(self, path: str, machine_dir: str, machines_dir: str) -> None:
        self.path, self.machine_dir, self.machines_dir = path, machine_dir, machines_dir
        self.fd: int | None = None

    def __enter__(self) -> None:
        import fcntl

        try:
            os.makedirs(self.machines_dir, PRIVATE_DIR, exist_ok=True)
            os.chmod(self.machines_dir, PRIVATE_DIR)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            raise NotQuick from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st, held = os.stat(self.path), os.fstat(fd)
        except OSError:  # held by another command, or unlinked by its holder meanwhile
            os.close(fd)
            raise NotQuick from None
        if (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino):
            os.close(fd)
            raise NotQuick
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self.fd is None:
            return
        try:
            if not os.path.lexists(self.machine_dir):
                try:
                    os.unlink(self.path)  # no stale .NAME.lock for a machine that does not exist
                except FileNotFoundError:
                    pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None


def _sha256_hex(text: str) -> str:
    try:  # the interpreter's own sha256: hashlib would load OpenSSL first
        from _sha256 import sha256  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # Python 3.12+
        except ImportError:
            from hashlib import sha256
    return sha256(text.encode()).hexdigest()


def current_machine() -> str | None:
    """machine.client.dockercontext.current_machine(): the machine whose docker context is current, or None."""
    if os.environ.get("DOCKER_HOST"):
        return None
    env = os.environ.get("DOCKER_CONFIG")
    config_dir = pure_path(_expanded(env)) if env else os.path.join(os.path.expanduser("~"), ".docker")
    if os.path.exists(config_dir) and not os.path.isdir(config_dir):
        raise NotQuick  # dockercontext says what is wrong with it
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        try:
            with open(os.path.join(config_dir, "config.json"), encoding="utf-8") as f:
                raw = f.read()
        except OSError:
            return None  # missing or unreadable: no current context (dockercontext.current_context)
        except ValueError:
            raise NotQuick from None
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return None  # a damaged config.json: no current context
        except RecursionError:
            raise NotQuick from None
        name = data.get("currentContext") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name or name == "default":
        return None
    try:
        with open(os.path.join(config_dir, "contexts", "meta", _sha256_hex(name), "meta.json"), encoding="utf-8") as f:
            meta = json.loads(f.read())
    except (OSError, ValueError):
        return None
    except RecursionError:
        raise NotQuick from None
    metadata = meta.get("Metadata") if isinstance(meta, dict) else None
    owner = metadata.get("MachineName") if isinstance(metadata, dict) else None
    return owner if isinstance(owner, str) and owner else None
