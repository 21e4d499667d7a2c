"""`machine import`: take docker-machine's machines over (reversibly, with --undo)."""

from __future__ import annotations

import click

from machine import orchestrator
from machine.app import App, pass_app
from machine.errors import MachineError, UsageError


def _docker_machine_names(app: App) -> tuple[list[str], list[str]]:
    """(importable, unsupported) docker-machine records in the store."""
    ok, unsupported = [], []
    for name in app.store.names():
        try:
            cfg = app.store.load(name)
        except MachineError:
            continue
        if cfg.origin:
            (ok if cfg.origin.get("supported", True) else unsupported).append(name)
    return ok, unsupported


@click.command("import")
@click.argument("names", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Import every docker-machine machine whose driver machine has.")
@click.option("--undo", is_flag=True, help="Give imported machines back to docker-machine (their original config).")
@pass_app
def import_(app: App, names: tuple[str, ...], all_: bool, undo: bool) -> None:
    """Convert docker-machine's machines into machine's own, so certificate renewal, docker contexts and
    upgrades apply to them. docker-machine's config.json is kept beside the new one as
    config.json.docker-machine; 'machine import --undo NAME' puts it back."""
    if bool(names) == all_:
        raise UsageError("Give machine names or --all (not both)",
                         "Examples: machine import dev   machine import --all   machine import --undo dev")
    if undo:
        if all_:
            raise UsageError("--undo takes machine names, not --all", "Example: machine import --undo dev")
        for name in names:
            orchestrator.undo_docker_machine_import(app.store, app.name_or_default(name))
            click.echo(f"{name}: docker-machine's config restored; machine reads it as a docker-machine record again")
        return
    if all_:
        todo, unsupported = _docker_machine_names(app)
        for name in unsupported:
            click.echo(f"{name}: skipped: {app.store.load(name).origin.get('driver_name')} is not a driver machine has",
                       err=True)
        if not todo:
            click.echo("No docker-machine machines to import.")
            return
    else:
        todo = [app.name_or_default(n) for n in names]

    def import_one(name: str) -> None:
        cfg = orchestrator.import_docker_machine(app.store, name, app.progress)
        click.echo(f"{name}: imported ({cfg.driver} driver); docker-machine's config kept as "
                   f"{app.store.machine_dir(name) / 'config.json.docker-machine'}")

    app.each(todo, import_one, failed="were not imported")
