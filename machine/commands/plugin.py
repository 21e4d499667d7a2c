"""`machine install-plugin`: make `docker machine ...` work (a docker CLI plugin)."""

from __future__ import annotations

from pathlib import Path

import click

from machine.app import App, pass_app
from machine.client import cliplugin


@click.command("install-plugin")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Plugin directory [default: $DOCKER_CONFIG/cli-plugins, else ~/.docker/cli-plugins].")
@click.option("-f", "--force", is_flag=True, help="Replace a docker-machine there that machine did not write.")
@pass_app
def install_plugin(app: App, directory: Path | None, force: bool) -> None:
    """Install the docker CLI plugin, so `docker machine ls` runs `machine ls`."""
    path = cliplugin.install(directory, force)
    click.echo(f"Installed {path}; try: docker machine ls")
