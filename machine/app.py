"""What every command gets: the store, debug flag, progress printer; and name resolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from machine.errors import NotFound
from machine.names import validate_name
from machine.progress import Progress
from machine.store import Store

DEFAULT_NAME = "default"


@dataclass
class App:
    store: Store
    debug: bool = False
    progress: Progress = field(default_factory=Progress)

    def name_or_default(self, name: str | None) -> str:
        """`name` validated, or `default` when none was given (saying so clearly if it does not exist).
        An empty name ("") is refused: it is not the same as giving none."""
        if name is not None:
            return validate_name(name)
        if not self.store.exists(DEFAULT_NAME):
            raise NotFound(
                "No machine name given, and there is no machine named 'default'",
                "Give a machine name (see 'machine ls'), or create one called 'default'.",
            )
        return DEFAULT_NAME

    def existing(self, name: str | None) -> str:
        """Like name_or_default, and the machine must exist."""
        resolved = self.name_or_default(name)
        self.store.load(resolved)  # NotFound / ConfigError with the file's name
        return resolved


pass_app = click.make_pass_decorator(App)


def storage_root(path: str | None) -> Path | None:
    return Path(path).expanduser() if path else None
