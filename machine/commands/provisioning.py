"""provision, regenerate-certs, upgrade: (re)configure machines' engines over SSH."""

from __future__ import annotations

from collections.abc import Callable

import click

from machine import orchestrator
from machine.app import App, pass_app


def _on_each(app: App, names: tuple[str, ...], flow: Callable[..., None]) -> None:
    """`flow(store, name, progress, debug)` for each machine named (the `default` machine when none are); all
    the names are checked before any machine is touched."""
    targets = [app.existing(n) for n in names] if names else [app.existing(None)]
    app.each(targets, lambda n: flow(app.store, n, app.progress, app.debug), hint="See the errors above.")


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def provision(app: App, names: tuple[str, ...]) -> None:
    """Provision machines again: detect the OS, install and configure the engine, check it."""
    _on_each(app, names, orchestrator.provision)


@click.command("regenerate-certs")
@click.argument("names", nargs=-1)
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--client-certs", is_flag=True,
              help="Also make a new CA and client certificate (every machine then needs new certificates).")
@pass_app
def regenerate_certs(app: App, names: tuple[str, ...], force: bool, client_certs: bool) -> None:
    """Issue new TLS certificates for machines' engines (after an address change, or to rotate them)."""
    if not force:
        what = "the CA, the client certificate and the machines' server certificates" if client_certs \
            else "the machines' server certificates"
        if not click.confirm(f"Regenerate {what}? The engine restarts.", default=False):
            click.echo("Nothing changed.")
            return
    if client_certs:
        orchestrator.new_ca(app.store, app.progress)
    _on_each(app, names, orchestrator.regenerate_certs)
    if client_certs:
        others = sorted(set(app.store.names()) - set(names or ("default",)))
        if others:
            app.progress.warn(f"The CA changed: {', '.join(others)} need 'machine regenerate-certs' too.")


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def upgrade(app: App, names: tuple[str, ...]) -> None:
    """Upgrade the Docker engine of machines (from the distribution's packages)."""
    _on_each(app, names, orchestrator.upgrade)
