"""inspect, url, ip, active, version: answers from the store where possible (no driver import)."""

from __future__ import annotations

import json
import os

import click

from machine import __version__
from machine.app import App, pass_app
from machine.errors import NotFound
from machine.readonly import active_names, saved_url
from machine.store import MachineConfig, Store

SECRET_WORDS = ("password", "secret", "token")


def _scrub(d: dict) -> dict:
    return {k: ("****" if any(w in k.lower() for w in SECRET_WORDS) and v else v) for k, v in d.items()}


def public_view(cfg: MachineConfig, machine_dir: os.PathLike[str] | str) -> dict:
    """The machine as shown by inspect: its config with secrets masked, plus paths."""
    scrub = _scrub
    return {
        "Name": cfg.name,
        "DriverName": str(cfg.origin.get("driver_name") or cfg.driver),
        "Driver": scrub(cfg.driver_options),
        "DriverData": scrub(cfg.driver_data),
        "Engine": cfg.engine,
        "SSH": {k: v for k, v in cfg.ssh.items()},
        "Swarm": cfg.swarm,
        "Labels": cfg.labels,
        "Shares": [{"HostPath": s.get("host"), "GuestPath": s.get("guest"), "ReadOnly": bool(s.get("ro"))}
                   for s in cfg.shares],
        "ShareErrors": list(cfg.share_errors),
        # what `--share-mechanism` asked for (auto) and what the last start used
        "ShareMechanism": {"Chosen": cfg.share_mechanism or "auto",
                           "InUse": str(cfg.driver_data.get("share_mechanism") or "")},
        "CreatedAt": cfg.created_at,
        "StorePath": str(machine_dir),
        "SchemaVersion": cfg.schema_version,
    }


def inspect_view(store: Store, cfg: MachineConfig) -> dict:
    """public_view plus docker-machine's fields (ConfigVersion, Driver.IPAddress/URL/SSH*/MachineName...,
    HostOptions.EngineOptions/SwarmOptions/AuthOptions), so docker-machine's `inspect -f` templates work."""
    from machine.dockermachine.view import fields

    view = public_view(cfg, store.machine_dir(cfg.name))
    theirs = fields(store, cfg)
    view["ConfigVersion"] = theirs["ConfigVersion"]
    view["Driver"] = {**_scrub(theirs["Driver"]), **view["Driver"]}
    view["HostOptions"] = theirs["HostOptions"]
    return view


@click.command()
@click.argument("name", required=False)
@click.option("-f", "--format", "fmt", help="Go-template-style format, e.g. '{{.DriverName}}'.")
@pass_app
def inspect(app: App, name: str | None, fmt: str | None) -> None:
    """Show a machine's configuration as JSON."""
    resolved = app.name_or_default(name)
    view = inspect_view(app.store, app.store.load(resolved))
    if fmt:
        from machine.ls.gotemplate import render

        click.echo(render(fmt, view))
    else:
        click.echo(json.dumps(view, indent=4))


@click.command()
@click.argument("name", required=False)
@pass_app
def url(app: App, name: str | None) -> None:
    """Print a machine's engine URL."""
    from machine.cheapstate import require_running

    cfg = app.store.load(app.name_or_default(name))
    require_running(app.store, cfg)
    click.echo(saved_url(cfg))


@click.command()
@click.argument("names", nargs=-1)
@pass_app
def ip(app: App, names: tuple[str, ...]) -> None:
    """Print machines' IP addresses (asked of the driver)."""
    from machine import orchestrator

    for name in names or (None,):
        click.echo(orchestrator.ip(app.store, app.name_or_default(name), app.debug))


@click.command()
@pass_app
def active(app: App) -> None:
    """Print the active machine (DOCKER_HOST, or the current docker context)."""
    names = active_names(app.store)
    if not names:
        raise NotFound("No active host found", "Activate one: eval $(machine env NAME), or machine use NAME.")
    click.echo(names[0])


@click.command()
@click.argument("name", required=False)
@pass_app
def version(app: App, name: str | None) -> None:
    """Print machine's version, or with NAME the Docker engine version of that machine."""
    if name is None:
        click.echo(f"machine version {__version__}")
        return
    from machine import orchestrator

    click.echo(orchestrator.engine_version(app.store, app.existing(name), app.debug))
