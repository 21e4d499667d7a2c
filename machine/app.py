"""What every command gets: the store, debug flag, progress printer; and name resolution."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import click

from machine.errors import MachineError, PartialFailure
from machine.progress import Progress
from machine.readonly import DEFAULT_NAME, name_or_default
from machine.store import Store

__all__ = ["App", "DEFAULT_NAME", "pass_app", "storage_root"]


@dataclass
class App:
    store: Store
    debug: bool = False
    progress: Progress = field(default_factory=Progress)

    def name_or_default(self, name: str | None) -> str:
        """`name` validated, or `default` when none was given (see machine.readonly.name_or_default)."""
        return name_or_default(self.store, name)

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
