"""Docker contexts for machines, written as the docker CLI writes them (stdlib only, fast).

Layout (`$DOCKER_CONFIG`, default `~/.docker`):
  contexts/meta/<sha256(name)>/meta.json   {"Name", "Metadata": {"Description", "MachineName"},
                                            "Endpoints": {"docker": {"Host", "SkipTLSVerify"}}}
  contexts/tls/<sha256(name)>/docker/{ca.pem,cert.pem,key.pem}
  config.json                               "currentContext" (every other key is kept)

`Metadata.MachineName` marks a context as made by machine (the docker CLI keeps extra metadata
fields); contexts without it are never changed or removed. The context is named after the machine,
except where the docker CLI would refuse the name ("default" is reserved, names need two
characters): then it is `machine-<name>`. The context that was current before `machine use` is
remembered per docker config directory in `<store>/previous-context.json`, so `machine use --unset`
and removing the machine can restore it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine import machinedir
from machine.atomicfile import ensure_dir, folder_error, write_atomic
from machine.errors import ClientError, ConfigError, Conflict
from machine.filelock import FileLock
from machine.store import default_root

DOCKER_CONTEXT_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$")
RESERVED = "default"
MARKER = "MachineName"
PREVIOUS_FILE = "previous-context.json"
TLS_FILES = machinedir.CLIENT_TLS_FILES


def docker_config_dir() -> Path:
    """The docker CLI's config directory: $DOCKER_CONFIG, else ~/.docker."""
    env = os.environ.get("DOCKER_CONFIG")
    path = Path(env).expanduser() if env else Path.home() / ".docker"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"The docker client's config folder {path} is not a folder",
                          "Point DOCKER_CONFIG at a folder (or unset it for ~/.docker).")
    return path


def context_name_for(machine: str) -> str:
    """The docker context name of a machine: its own name when the docker CLI accepts it."""
    if machine != RESERVED and DOCKER_CONTEXT_NAME_RE.fullmatch(machine):
        return machine
    return f"machine-{machine}"


def context_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def meta_dir(name: str) -> Path:
    return docker_config_dir() / "contexts" / "meta" / context_id(name)


def tls_dir(name: str) -> Path:
    return docker_config_dir() / "contexts" / "tls" / context_id(name)


def read_meta(name: str) -> dict[str, Any] | None:
    """A context's meta.json, or None when there is no such context (or it cannot be read)."""
    try:
        data = json.loads((meta_dir(name) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def machine_of(name: str | None) -> str | None:
    """The machine a context belongs to, or None for a context machine did not make."""
    if not name or name == RESERVED:
        return None
    meta = read_meta(name)
    metadata = meta.get("Metadata") if meta else None
    owner = metadata.get(MARKER) if isinstance(metadata, dict) else None
    return owner if isinstance(owner, str) and owner else None


# -- config.json ---------------------------------------------------------------------------------


def _make_dirs(path: Path, mode: int) -> None:
    """Create the missing directories of `path` with `mode`, leaving existing ones as they are."""
    if path.is_dir():
        return
    _make_dirs(path.parent, mode)
    try:
        path.mkdir(mode=mode, exist_ok=True)
    except OSError as e:
        raise folder_error(path, e) from None


def config_path() -> Path:
    return docker_config_dir() / "config.json"


def read_config() -> dict[str, Any]:
    """config.json as a dict ({} when missing). A damaged file is an error: it is never overwritten."""
    path = config_path()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"Cannot read {path}: {e.strerror}", "Check the file's permissions.") from None
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as e:
        raise ConfigError(f"Docker client config {path} is not valid JSON: {e}",
                          "Fix the file (the docker CLI cannot read it either), then retry.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Docker client config {path} is not a JSON object", "Fix the file, then retry.")
    return data


def write_config(data: dict[str, Any]) -> None:
    """Write config.json atomically, through a symlink if it is one, tab-indented like the docker CLI."""
    path = config_path()
    target = path.resolve() if path.is_symlink() else path
    _make_dirs(target.parent, 0o700)
    write_atomic(target, json.dumps(data, indent="\t") + "\n", mode=0o600)


def current_context() -> str | None:
    """The context the docker CLI uses: none when DOCKER_HOST is set (it wins), else $DOCKER_CONTEXT,
    else config.json's currentContext. "default" and unset both give None."""
    if os.environ.get("DOCKER_HOST"):
        return None
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        try:
            name = read_config().get("currentContext")
        except ConfigError:
            return None
    return name if isinstance(name, str) and name and name != RESERVED else None


def current_machine() -> str | None:
    """The machine whose docker context is current (see current_context), or None."""
    return machine_of(current_context())


# -- remembered previous context ----------------------------------------------------------------


def _previous_path(store_root: Path | None) -> Path:
    return (store_root or default_root()) / PREVIOUS_FILE


def _lock(store_root: Path | None) -> FileLock:
    root = ensure_dir(store_root or default_root())
    return FileLock(root / ".docker-context.lock", timeout=30, what="The docker context settings")


def _previous_all(store_root: Path | None) -> dict[str, Any]:
    try:
        data = json.loads(_previous_path(store_root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _key() -> str:
    return str(docker_config_dir().expanduser().absolute())


def _save_previous(store_root: Path | None, entry: dict[str, Any] | None) -> None:
    data = _previous_all(store_root)
    if entry is None:
        data.pop(_key(), None)
    else:
        data[_key()] = entry
    write_atomic(_previous_path(store_root), json.dumps(data, indent=2) + "\n")


# -- use / unset / forget -----------------------------------------------------------------------


@dataclass(frozen=True)
class Switch:
    """What a change of the current context did: from and to (None = no currentContext)."""

    before: str | None
    after: str | None
    note: str = ""


def write_context(machine: str, host: str, cert_dir: Path | None, description: str) -> str:
    """Create or update the machine's context (endpoint `host`, TLS material copied from `cert_dir`
    when given). Returns the context name. Refuses to touch a context of the same name that machine
    did not make."""
    name = context_name_for(machine)
    existing = read_meta(name)
    if existing is not None and machine_of(name) != machine:
        raise Conflict(f"A docker context named {name!r} already exists and was not made for machine {machine!r}",
                       f"Remove or rename it first: docker context rm {name}")
    material: dict[str, bytes] = {}
    if cert_dir is not None:
        missing = [f for f in TLS_FILES if not (cert_dir / f).is_file()]
        if missing:
            raise ClientError(f"Machine {machine!r} has no client certificates ({', '.join(missing)} missing "
                              f"in {cert_dir})",
                              f"Put ca.pem, cert.pem and key.pem there, or make them again: "
                              f"machine regenerate-certs --client-certs {machine}")
        material = {f: (cert_dir / f).read_bytes() for f in TLS_FILES}
    meta = {"Name": name, "Metadata": {"Description": description, MARKER: machine},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}
    _make_dirs(meta_dir(name), 0o755)
    tls = tls_dir(name)
    shutil.rmtree(tls, ignore_errors=True)
    if material:
        _make_dirs(tls / "docker", 0o700)
        for fname, data in material.items():
            write_atomic(tls / "docker" / fname, data, mode=0o600)
    write_atomic(meta_dir(name) / "meta.json", json.dumps(meta, separators=(",", ":")), mode=0o644)
    return name


def refresh(machine: str, host: str, cert_dir: Path | None, description: str) -> bool:
    """Rewrite the machine's context if it has one (e.g. after a start changed the engine URL or a
    regenerate-certs changed the certificates). Returns whether there was one."""
    if machine_of(context_name_for(machine)) != machine:
        return False
    write_context(machine, host, cert_dir, description)
    return True


def use(machine: str, host: str, cert_dir: Path | None, description: str, store_root: Path | None = None) -> Switch:
    """Write the machine's context and make it current in config.json, remembering the context that
    was current unless that one is a machine's too."""
    with _lock(store_root):
        name = write_context(machine, host, cert_dir, description)
        config = read_config()
        before = config.get("currentContext") or None
        if before != name and (machine_of(before) is None or _key() not in _previous_all(store_root)):
            _save_previous(store_root, {"context": before if machine_of(before) is None else None})
        config["currentContext"] = name
        write_config(config)
    return Switch(before, name)


def _restore(config: dict[str, Any], store_root: Path | None) -> tuple[str | None, str]:
    """Set config's currentContext back to the remembered one; forget the record. (after, note)"""
    previous = _previous_all(store_root).get(_key())
    wanted = previous.get("context") if isinstance(previous, dict) else None
    note = ""
    if wanted and wanted != RESERVED and read_meta(wanted) is None:
        note = f"the previous context {wanted!r} no longer exists; using the default context"
        wanted = None
    if wanted:
        config["currentContext"] = wanted
    else:
        config.pop("currentContext", None)
    write_config(config)
    _save_previous(store_root, None)
    return wanted, note


def unset(store_root: Path | None = None) -> Switch:
    """Stop using a machine's context: restore the context that was current before `machine use`."""
    with _lock(store_root):
        config = read_config()
        before = config.get("currentContext") or None
        if machine_of(before) is None:
            _save_previous(store_root, None)
            return Switch(before, before, f"the current docker context {before or 'default'!r} is not a machine's; "
                                          "left unchanged")
        after, note = _restore(config, store_root)
    return Switch(before, after, note)


def forget_machine(name: str, store_root: Path | None = None) -> Switch | None:
    """Remove the machine's context (if machine made it); when it was current, restore the previous
    context. Called when the machine is removed. Returns the switch made, if any."""
    ctx_name = context_name_for(name)
    if machine_of(ctx_name) != name:
        return None
    try:
        with _lock(store_root):
            switch = None
            config = read_config()
            if config.get("currentContext") == ctx_name:
                after, note = _restore(config, store_root)
                switch = Switch(ctx_name, after, note)
            shutil.rmtree(meta_dir(ctx_name), ignore_errors=True)
            shutil.rmtree(tls_dir(ctx_name), ignore_errors=True)
    except (ConfigError, OSError) as e:
        raise ClientError(f"Machine {name!r} is removed, but its docker context {ctx_name!r} could not be: {e}",
                          f"Remove it by hand: docker context rm -f {ctx_name}") from None
    return switch


__all__ = ["Switch", "context_name_for", "current_context", "current_machine", "docker_config_dir",
           "forget_machine", "machine_of", "read_config", "refresh", "unset", "use", "write_context"]
