"""provision, regenerate-certs, upgrade: (re)configure machines' engines over SSH."""

from __future__ import annotations

import click

from machine import orchestrator
from machine.app import App, pass_app


def _existing(app: App, names: tuple[str, ...]) -> list[str]:
    """All the machines named, checked before any is touched (the `default` machine when none are)."""
    return [app.existing(n) for n in names] if names else [app.existing(None)]


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def provision(app: App, names: tuple[str, ...]) -> None:
    """Provision machines again: detect the OS, install and configure the engine, check it."""
    app.each(_existing(app, names), lambda n: orchestrator.provision(app.store, n, app.progress, app.debug),
             hint="See the errors above.")


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
    app.each(_existing(app, names), lambda n: orchestrator.regenerate_certs(app.store, n, app.progress, app.debug),
             hint="See the errors above.")
    if client_certs:
        others = sorted(set(app.store.names()) - set(names or ("default",)))
        if others:
            app.progress.warn(f"The CA changed: {', '.join(others)} need 'machine regenerate-certs' too.")


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def upgrade(app: App, names: tuple[str, ...]) -> None:
    """Upgrade the Docker engine of machines (from the distribution's packages)."""
    app.each(_existing(app, names), lambda n: orchestrator.upgrade(app.store, n, app.progress, app.debug),
             hint="See the errors above.")
