"""`machine env` and `machine config`: point the docker client at a machine, from the store only
(no driver, SSH or crypto import: these run inside `eval $(...)` and must answer at once). The text they print
comes from machine/readonly.py, which the fast path (machine/fastpath.py) prints too."""

from __future__ import annotations

import click
from click.core import ParameterSource

from machine import readonly
from machine.app import App, pass_app
from machine.client import shellenv
from machine.client.target import client_target

PROGRAM = "machine"


def command_prefix(ctx: click.Context) -> list[str]:
    """How the usage hint starts: the program, `-s PATH` when the store was given on the command line, the command."""
    line = [PROGRAM]
    root = ctx.find_root()
    if root.get_parameter_source("storage_path") == ParameterSource.COMMANDLINE and root.params.get("storage_path"):
        line += ["-s", str(root.params["storage_path"])]
    return [*line, ctx.info_name or "env"]


@click.command()
@click.argument("name", required=False)
@click.option("--shell", type=click.Choice(shellenv.SHELLS, case_sensitive=False),
              help="Shell to print lines for [default: detected from $SHELL; on Windows the parent process].")
@click.option("-u", "--unset", is_flag=True, help="Print the lines that unset the variables instead.")
@click.option("--no-proxy", is_flag=True, help="Add the machine's IP to NO_PROXY (or no_proxy, if that is set).")
@pass_app
def env(app: App, name: str | None, shell: str | None, unset: bool, no_proxy: bool) -> None:
    """Print the shell lines that point the docker client at a machine: eval $(machine env NAME)."""
    prefix = command_prefix(click.get_current_context())
    if unset:
        click.echo(readonly.unset_text(prefix, name, shell, no_proxy), nl=False)
        return
    target = client_target(app.store, app.name_or_default(name), app.progress, app.debug)
    cert_dir = str(target.cert_dir) if target.cert_dir else None
    click.echo(readonly.env_text(prefix, name, shell, no_proxy, target.name, target.url, cert_dir), nl=False)


@click.command()
@click.argument("name", required=False)
@pass_app
def config(app: App, name: str | None) -> None:
    """Print the docker client flags for a machine: docker $(machine config NAME) ps."""
    target = client_target(app.store, app.name_or_default(name), app.progress, app.debug)
    click.echo(readonly.config_text(target.url, str(target.cert_dir) if target.cert_dir else None), nl=False)
