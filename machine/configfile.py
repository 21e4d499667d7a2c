"""Reading and removing a machine's files without hanging or crashing on whatever a damaged store holds.
Reading imports only os and stat (the read-only commands read configs on every `machine env`)."""

from __future__ import annotations

import os
import stat

from machine import machinedir
from machine.errors import ConfigError, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

MAX_CONFIG_BYTES = 16 * 1024 * 1024


def _empty_folder(directory: str | Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def read_text(name: str, directory: str | Path) -> str:
    """The text of `directory`/config.json, checked first: never opens a FIFO or device (so never blocks), refuses
    folders, dangling symlinks and loops, huge files and non-UTF-8 text, each as a ConfigError naming the file."""
    path = os.path.join(directory, machinedir.CONFIG)
    damaged = f"Fix or restore it, or remove the machine with 'machine rm -f {name}'."
    try:
        st = os.stat(path)  # follows symlinks: a dangling one or a loop fails here
    except FileNotFoundError:
        if not os.path.lexists(directory):
            raise NotFound(
                f"Host does not exist: {name!r}",
                "See the machines you have with 'machine ls', or create one with 'machine create'.",
            ) from None
        if os.path.islink(path):
            raise ConfigError(f"Config file {path} is a symlink to nothing", damaged) from None
        from machine import createmarker

        if createmarker.present(directory):
            raise ConfigError(f"Machine {name!r} is broken: its create did not finish (no config was written)",
                              f"Remove it with: machine rm {name}") from None
        if _empty_folder(directory):  # a create killed between making its folder and writing the marker
            raise ConfigError(f"Machine {name!r} is broken: its create did not finish (its folder is empty)",
                              f"Remove it with: machine rm {name}") from None
        raise ConfigError(f"Machine folder {directory} has no {machinedir.CONFIG}", damaged) from None
    except NotADirectoryError:
        raise ConfigError(f"Machine folder {directory} is not a folder", damaged) from None
    except OSError as e:  # permission denied, a symlink loop, a name too long
        raise ConfigError(f"Config file {path} cannot be read: {e.strerror or e}",
                          "Check the file, its folder and their permissions.") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"Config file {path} is a folder, not a file", damaged)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"Config file {path} is not a regular file (a FIFO, socket or device)", damaged)
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"Config file {path} is {st.st_size} bytes, too large for a machine config", damaged)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never wait on a FIFO swapped in
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"Config file {path} is not a regular file", damaged)
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"Config file {path} cannot be read: {e.strerror or e}",
                          "Check the file and its permissions.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"Config file {path} is corrupt: not UTF-8 text (byte {e.start})", damaged) from None


def remove_tree(directory: Path) -> None:
    """shutil.rmtree that also removes folders their owner made unreadable (mode 000)."""
    import shutil  # here: read-only commands load configs and never remove

    shutil.rmtree(directory, onerror=_make_removable)


def _make_removable(func: Any, path: str, exc_info: Any) -> None:
    """rmtree's error handler: a folder its owner made unreadable (mode 000) gets u+rwx, then the step is retried."""
    parent = os.path.dirname(path)
    for target in (path, parent):
        try:
            os.chmod(target, 0o700)
        except OSError:
            pass
    if func in (os.rmdir, os.unlink, os.remove):
        func(path)
    else:
        import shutil

        shutil.rmtree(path, onerror=_rmtree_final)


def _rmtree_final(func: Any, path: str, exc_info: Any) -> None:
    raise exc_info[1]
