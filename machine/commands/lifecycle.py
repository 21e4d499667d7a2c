"""start, stop, suspend, restart, kill, status, rm."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from machine import orchestrator
from machine.app import App, pass_app
from machine.errors import MachineError, NotFound


def _on_each(name: str, help: str, act: Callable[[App, str], None]) -> click.Command:
    """A command that does `act` to each machine named (the `default` machine when none is given)."""

    @click.command(name, help=help)
    @click.argument("names", nargs=-1)
    @pass_app
    def command(app: App, names: tuple[str, ...]) -> None:
        app.each(names, lambda n: act(app, n))

    return command


start = _on_each("start", "Start machines (a suspended machine resumes; the `default` machine when no name is given).",
                 lambda app, n: orchestrator.start(app.store, n, app.progress, app.debug))
stop = _on_each("stop", "Stop machines gracefully (ACPI power off; killed after a timeout).",
                lambda app, n: orchestrator.stop(app.store, n, app.progress, debug=app.debug))
suspend = _on_each("suspend", "Save machines' state (memory) to disk and power them off; 'start' resumes them.",
                   lambda app, n: orchestrator.suspend(app.store, n, app.progress, app.debug))
kill = _on_each("kill", "Power machines off at once.",
                lambda app, n: orchestrator.stop(app.store, n, app.progress, force=True, debug=app.debug))
restart = _on_each("restart", "Stop and start machines.",
                   lambda app, n: orchestrator.restart(app.store, n, app.progress, app.debug))


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
