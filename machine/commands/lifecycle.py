"""start, stop, restart, kill, status, rm."""

from __future__ import annotations

import os

import click

from machine import orchestrator
from machine.app import App, pass_app
from machine.errors import MachineError, NotFound


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def start(app: App, names: tuple[str, ...]) -> None:
    """Start machines (the `default` machine when no name is given)."""
    app.each(names, lambda n: orchestrator.start(app.store, n, app.progress, app.debug))


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def stop(app: App, names: tuple[str, ...]) -> None:
    """Stop machines gracefully (ACPI power off; killed after a timeout)."""
    app.each(names, lambda n: orchestrator.stop(app.store, n, app.progress, debug=app.debug))


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def kill(app: App, names: tuple[str, ...]) -> None:
    """Power machines off at once."""
    app.each(names, lambda n: orchestrator.stop(app.store, n, app.progress, force=True, debug=app.debug))


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def restart(app: App, names: tuple[str, ...]) -> None:
    """Stop and start machines."""
    app.each(names, lambda n: orchestrator.restart(app.store, n, app.progress, app.debug))


@click.command()
@click.argument("name", required=False)
@pass_app
def status(app: App, name: str | None) -> None:
    """Print a machine's state (asked of its driver)."""
    resolved = app.existing(name)
    state = orchestrator.status(app.store, resolved, app.debug)
    click.echo(str(state))
    note = orchestrator.unexpected_exit(app.store, resolved, app.debug) if state != "Running" else ""
    if note:
        click.echo(f"Warning: {note}", err=True)


@click.command()
@click.argument("names", nargs=-1)
@click.option("-y", "yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("-f", "--force", is_flag=True, help="Remove the local machine even if the VM cannot be removed.")
@pass_app
def rm(app: App, names: tuple[str, ...], yes: bool, force: bool) -> None:
    """Remove machines: the VM, its disks and the local configuration."""
    resolved = [app.name_or_default(n) for n in names] if names else [app.name_or_default(None)]
    missing = [n for n in resolved if not os.path.lexists(app.store.machine_dir(n))]
    if missing and not (force or yes):
        raise NotFound(f"Host does not exist: {', '.join(repr(n) for n in missing)}", "See 'machine ls'.")
    if not yes:
        click.echo(f"About to remove {', '.join(resolved)}")
        click.echo("WARNING: This action will delete both local reference and remote instance.")
        for name in resolved:  # docker-machine machines of drivers we do not have: only their record goes
            try:
                notice = orchestrator.removal_notice(app.store, app.store.load(name))
            except MachineError:
                continue
            if notice:
                click.echo(notice)
        answer = click.prompt("Are you sure?", type=click.Choice(["y", "n"]), show_choices=True, default="n",
                              show_default=False, prompt_suffix=" ", err=False)
        if answer != "y":
            click.echo("Not removed.")
            return

    def remove(name: str) -> None:
        orchestrator.remove(app.store, name, app.progress, force=force, debug=app.debug)
        click.echo(f"Successfully removed {name}")

    app.each(resolved, remove, failed="could not be removed", hint="Use -f to remove the local machines anyway.")
