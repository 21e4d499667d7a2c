"""What every command gets: the store, debug flag, progress printer; and name resolution."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import click

from machine.errors import MachineError, NotFound, PartialFailure
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

    def each(self, names: Iterable[str | None], action: Callable[[str], None], *, failed: str = "failed",
             hint: str | None = None) -> None:
        """Run `action(name)` for each of `names` (the `default` machine when none are given): every
        multi-machine command goes through here. One machine: its error is raised as it is. Several: each
        failure is reported and the others still run, then PartialFailure says how many `failed`, with
        `hint` (default: the first failure's hint)."""
        targets = list(names) or [None]
        failures: list[MachineError] = []
        for name in targets:
            try:
                action(self.name_or_default(name))
            except MachineError as e:
                if len(targets) == 1:
                    raise
                click.echo(f"Error with {name}: {e.message}", err=True)
                failures.append(e)
        if failures:
            raise PartialFailure(f"{len(failures)} of {len(targets)} machines {failed}",
                                 hint if hint is not None else failures[0].hint)


pass_app = click.make_pass_decorator(App)


def storage_root(path: str | None) -> Path | None:
    return Path(path).expanduser() if path else None
