"""`machine use NAME`: make the machine's docker context current, so plain `docker` talks to it
without environment variables; `machine use --unset` goes back to the context used before."""

from __future__ import annotations

import os

import click

from machine.app import App, pass_app
from machine.client import dockercontext
from machine.client.target import client_target
from machine.errors import UsageError


def _override_warnings() -> list[str]:
    """Environment variables that make the docker CLI ignore config.json's current context."""
    warnings = []
    if os.environ.get("DOCKER_HOST"):
        warnings.append("DOCKER_HOST is set in this shell and wins over the context; unset it: eval $(machine env -u)")
    if os.environ.get("DOCKER_CONTEXT"):
        warnings.append("DOCKER_CONTEXT is set in this shell and wins over the current context; unset it: "
                        "unset DOCKER_CONTEXT")
    return warnings


@click.command()
@click.argument("name", required=False)
@click.option("-u", "--unset", "unset_", is_flag=True,
              help="Go back to the docker context that was current before 'machine use'.")
@pass_app
def use(app: App, name: str | None, unset_: bool) -> None:
    """Make a machine's docker context current (plain `docker` then talks to it)."""
    if unset_:
        if name is not None:
            raise UsageError("'machine use --unset' takes no machine name",
                             "It restores the context that was current before 'machine use'.")
        switch = dockercontext.unset(app.store.root)
        if switch.note:
            app.progress.warn(switch.note)
        if switch.after != switch.before:
            click.echo(f"Current docker context is now {switch.after or 'default'!r}")
        return
    resolved = app.name_or_default(name)
    with app.store.lock(resolved):  # serialised with rm: never a context left current for a removed machine
        target = client_target(app.store, resolved, app.progress, app.debug)
        description = f"machine {target.name}" + (f" ({target.driver})" if target.driver else "")
        switch = dockercontext.use(target.name, target.url, target.cert_dir, description, app.store.root)
    for warning in _override_warnings():
        app.progress.warn(warning)
    click.echo(f"Current docker context is now {switch.after!r} (machine {target.name}, {target.url})")
