"""provision, regenerate-certs, upgrade: (re)configure machines' engines over SSH."""

from __future__ import annotations

from collections.abc import Callable

import click

from machine.app import App, pass_app
from machine.errors import MachineError, PartialFailure, Unsupported


def _each(app: App, names: tuple[str, ...], action: Callable[..., None]) -> None:
    """Run `action(store, cfg, driver, progress)` for each machine under its lock, saving its config
    afterwards (also after a failure: a host key learned or a certificate issued must not be lost)."""
    from machine import orchestrator

    failures = 0
    targets = [app.existing(n) for n in names] if names else [app.existing(None)]
    for name in targets:
        try:
            with app.store.lock(name):
                cfg = app.store.load(name)
                orchestrator.require_own(cfg, "reconfigure its engine")
                driver = orchestrator.driver_for(app.store, cfg, app.debug)
                if not driver.features.managed_engine:
                    raise Unsupported(f"Machine {name!r} (driver {cfg.driver}) is not managed over SSH",
                                      "Its engine is configured outside machine.")
                orchestrator.require_running(driver, name)
                try:
                    action(app.store, cfg, driver, app.progress)
                finally:
                    app.store.save(cfg)
            orchestrator.sync_context(app.store, cfg)  # new URL or client certificates reach its docker context
        except MachineError as e:
            if len(targets) == 1:
                raise
            failures += 1
            click.echo(f"Error with {name}: {e.message}", err=True)
    if failures:
        raise PartialFailure(f"{failures} of {len(targets)} machines failed", "See the errors above.")


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def provision(app: App, names: tuple[str, ...]) -> None:
    """Provision machines again: detect the OS, install and configure the engine, check it."""
    from machine.provision.run import provision as run

    _each(app, names, run)


@click.command("regenerate-certs")
@click.argument("names", nargs=-1)
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--client-certs", is_flag=True,
              help="Also make a new CA and client certificate (every machine then needs new certificates).")
@pass_app
def regenerate_certs(app: App, names: tuple[str, ...], force: bool, client_certs: bool) -> None:
    """Issue new TLS certificates for machines' engines (after an address change, or to rotate them)."""
    from machine.provision.run import new_ca, regenerate

    if not force:
        what = "the CA, the client certificate and the machines' server certificates" if client_certs \
            else "the machines' server certificates"
        if not click.confirm(f"Regenerate {what}? The engine restarts.", default=False):
            click.echo("Nothing changed.")
            return
    if client_certs:
        new_ca(app.store, app.progress)
    _each(app, names, regenerate)
    if client_certs:
        others = sorted(set(app.store.names()) - set(names or ("default",)))
        if others:
            app.progress.warn(f"The CA changed: {', '.join(others)} need 'machine regenerate-certs' too.")


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def upgrade(app: App, names: tuple[str, ...]) -> None:
    """Upgrade the Docker engine of machines (from the distribution's packages)."""
    from machine.provision.run import upgrade as run

    _each(app, names, run)
