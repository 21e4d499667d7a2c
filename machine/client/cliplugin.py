"""The docker CLI plugin that makes `docker machine ...` run `machine ...`.

The docker CLI finds executables named `docker-<name>` in `$DOCKER_CONFIG/cli-plugins` (default
`~/.docker/cli-plugins`), asks each for `docker-cli-plugin-metadata` (a JSON object), and runs
`docker machine ls` as `docker-machine machine ls`. The plugin is a small Python script run by the
interpreter machine is installed in. POSIX only: on Windows the docker CLI wants a .exe plugin.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from machine import __version__
from machine.atomicfile import write_atomic
from machine.errors import ClientError, Conflict, HostNotUsable, UsageError

PLUGIN_NAME = "docker-machine"
MARKER = "# machine: docker CLI plugin"
SHEBANG_MAX = 127  # Linux reads at most this much of a #! line
METADATA = {
    "SchemaVersion": "0.1.0",
    "Vendor": "machine",
    "Version": __version__,
    "ShortDescription": "Create and manage lightweight Linux VMs as Docker hosts",
}

BODY = """{marker} (written by 'machine install-plugin'; it is rewritten by it, do not edit)
import json
import sys

if sys.argv[1:2] == ["docker-cli-plugin-metadata"]:
    from machine.client.cliplugin import METADATA

    print(json.dumps(METADATA))
    sys.exit(0)
args = sys.argv[1:]
if args[:1] == ["machine"]:  # the docker CLI passes the plugin's name first
    args = args[1:]
sys.argv[0] = "machine"
from machine.cli import main

main(args)
"""


def plugins_dir() -> Path:
    """Where the docker CLI looks for the user's plugins."""
    env = os.environ.get("DOCKER_CONFIG")
    return (Path(env).expanduser() if env else Path.home() / ".docker") / "cli-plugins"


def launcher(python: str) -> str:
    """The first lines, which run the script with `python`: a #! line, or, when the path is too
    long or has spaces for one, /bin/sh re-running the script (a line that is also valid Python)."""
    if len(f"#!{python}") <= SHEBANG_MAX and not any(c.isspace() for c in python):
        return f"#!{python}\n"
    if any(c in python for c in '"$`\\\n'):
        raise UsageError(f"Cannot write a plugin launcher for the interpreter path {python!r}",
                         "Install machine in a Python whose path has no quotes, '$', '`' or backslashes.")
    return f'#!/bin/sh\n"exec" "{python}" "$0" "$@"\n'


def script(python: str | None = None) -> str:
    return launcher(python or sys.executable) + BODY.format(marker=MARKER)


def install(directory: Path | None = None, force: bool = False) -> Path:
    """Write the plugin (executable) into `directory`; return its path. A `docker-machine` that this
    command did not write (e.g. the real docker-machine) is only replaced with `force`."""
    if os.name == "nt":
        raise HostNotUsable("The docker CLI plugin is not available on Windows yet",
                            "The docker CLI wants docker-machine.exe there; run 'machine' directly.")
    target_dir = directory or plugins_dir()
    path = target_dir / PLUGIN_NAME
    if path.exists() and not force:
        try:
            ours = MARKER in path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            ours = False
        if not ours:
            raise Conflict(f"{path} exists and was not written by machine (is it docker-machine?)",
                           "Move it away, or replace it with 'machine install-plugin --force'.")
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, script(), mode=0o755)
    except OSError as e:
        raise ClientError(f"Cannot write {path}: {e.strerror}", "Check the directory's permissions.") from None
    return path


__all__ = ["METADATA", "PLUGIN_NAME", "install", "launcher", "plugins_dir", "script"]
