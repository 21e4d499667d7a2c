"""`machine swarm`: create, ls, rm, scale and load for Docker Swarm clusters of machines."""

from __future__ import annotations

import json
from pathlib import Path

import click

from machine.app import App, pass_app


def _requests(create_args: tuple[str, ...]):  # noqa: ANN202
    """A factory of CreateRequests for nodes, from `machine create` options given after the counts."""
    from machine.commands.createoptions import parse_request

    parse_request("probe", list(create_args))  # bad options fail now, before any machine is made
    return lambda node: parse_request(node, list(create_args))


@click.group()
def swarm() -> None:
    """Docker Swarm clusters made of machines."""


@swarm.command("create", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("cluster")
@click.option("--managers", type=click.IntRange(1, 7), default=1, show_default=True)
@click.option("--workers", type=click.IntRange(0, 50), default=2, show_default=True)
@click.option("--load", "loads", multiple=True, metavar="TARBALL[=TAG]",
              help="Load an image on every node as it comes up (repeatable): a `docker save` archive, or with "
                   "=TAG a root filesystem tarball imported as TAG. Like `swarm load`, without waiting for it.")
@click.argument("create_args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def create(app: App, cluster: str, managers: int, workers: int, loads: tuple[str, ...],
           create_args: tuple[str, ...]) -> None:
    """Create CLUSTER: machines CLUSTER-m1.. and CLUSTER-w1.. in parallel, joined into one swarm.

    Options after the counts are `machine create` options, e.g. `-d qemu --qemu-memory 512`."""
    from machine.swarm import clusters as sw

    images = [(Path(path), tag) for path, _, tag in (spec.partition("=") for spec in loads)]
    sw.create_cluster(app.store, cluster, managers, workers, _requests(create_args),
                      app.progress, app.debug, images=images)
    lead = f"{cluster}-m1"
    click.echo(f"Swarm {cluster!r} is ready. Point your docker client at its manager: machine use {lead}")


@swarm.command("ls")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_app
def ls(app: App, fmt: str) -> None:
    """List clusters and their nodes."""
    from machine.swarm import clusters as sw

    rows = sw.describe(app.store)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'NAME':<16}{'MANAGERS':<28}{'WORKERS':<40}{'SUBNET':<16}SWITCH")
    for r in rows:
        click.echo(f"{r['Name']:<16}{','.join(r['Managers']):<28}{','.join(r['Workers']):<40}"
                   f"{r['Subnet']:<16}{r['Switch']}")


@swarm.command("rm")
@click.argument("cluster")
@click.option("-y", "yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("-f", "--force", is_flag=True, help="Remove machines even when they cannot leave cleanly.")
@pass_app
def rm(app: App, cluster: str, yes: bool, force: bool) -> None:
    """Make every node leave the swarm, then remove the machines and the cluster network."""
    from machine.swarm import clusternet
    from machine.swarm import clusters as sw

    members = list(clusternet.load(app.store, cluster).members)
    if not yes and not click.confirm(f"About to remove cluster {cluster} and machines {', '.join(members)}. "
                                     "Are you sure?"):
        click.echo("Not removed.")
        return
    sw.remove_cluster(app.store, cluster, app.progress, force=force, debug=app.debug)
    click.echo(f"Successfully removed cluster {cluster}")


@swarm.command("scale", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("cluster")
@click.option("--workers", type=click.IntRange(0, 50), required=True, help="Wanted number of workers.")
@click.argument("create_args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def scale(app: App, cluster: str, workers: int, create_args: tuple[str, ...]) -> None:
    """Add workers (created and joined) or remove them (drained first)."""
    from machine.swarm import clusters as sw

    sw.scale(app.store, cluster, workers, _requests(create_args), app.progress, app.debug)


@swarm.command("load")
@click.argument("cluster")
@click.argument("tarball", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tag", help="Import TARBALL as a root filesystem under this tag (docker import) "
                            "instead of `docker load`.")
@pass_app
def load(app: App, cluster: str, tarball: Path, tag: str | None) -> None:
    """Load an image on every node (no registry needed)."""
    from machine.swarm import clusters as sw

    sw.load_image(app.store, cluster, tarball, app.progress, tag=tag)
