"""Atomic, private file writes: temp file in the same directory, fsync, rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def ensure_dir(path: Path, mode: int = PRIVATE_DIR) -> Path:
    """Create `path` (and parents) if missing; set `mode` on the leaf (best effort on Windows)."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    if os.name == "posix":
        os.chmod(path, mode)
    return path


def write_atomic(path: Path, data: bytes | str, mode: int = PRIVATE_FILE) -> None:
    """Write `data` to `path` so readers see the old or the new content, never a mix."""
    if isinstance(data, str):
        data = data.encode()
    path = Path(path)
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
