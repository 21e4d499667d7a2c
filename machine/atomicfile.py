"""Atomic, private file writes: temp file in the same directory, fsync, rename."""

from __future__ import annotations

import os
from pathlib import Path

from machine import signals
from machine.errors import ConfigError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def ensure_dir(path: Path, mode: int = PRIVATE_DIR) -> Path:
    """Create `path` (and parents) if missing; set `mode` on the leaf (best effort on Windows).
    A path that cannot be a folder (a file on the way, /dev/null, no permission) is a ConfigError."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        if os.name == "posix":
            os.chmod(path, mode)
    except OSError as e:
        raise folder_error(path, e) from None
    return path


def folder_error(path: Path, error: OSError) -> ConfigError:
    """Why `path` cannot be used as a folder, naming the file in the way when there is one."""
    blocker = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        return ConfigError(f"Cannot use {path} as a folder: {blocker} is not a folder",
                           "Choose another path (for the store: -s PATH or MACHINE_STORAGE_PATH; for the docker "
                           "client: DOCKER_CONFIG), or move that file away.")
    return ConfigError(f"Cannot create the folder {path}: {error.strerror or error}",
                       "Check the path and its permissions, or choose another one (-s PATH or MACHINE_STORAGE_PATH).")


def write_atomic(path: Path, data: bytes | str, mode: int = PRIVATE_FILE) -> None:
    """Write `data` to `path` so readers see the old or the new content, never a mix."""
    if isinstance(data, str):
        data = data.encode()
    path = Path(path)
    import tempfile  # here: read-only commands import this module and never write

    with signals.deferred():  # a signal must not leave a .tmp file behind: it takes effect after the write
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if os.name == "posix":
                os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        if os.name == "posix":
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
