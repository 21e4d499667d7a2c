"""`machine env` and `machine config`: point the docker client at a machine, from the store only
(no driver, SSH or crypto import: these run inside `eval $(...)` and must answer at once)."""

from __future__ import annotations

import json
import os
import shlex

import click
from click.core import ParameterSource

from machine import machinedir
from machine.app import App, pass_app
from machine.client import shellenv
from machine.client.target import client_target
from machine.errors import UsageError

PROGRAM = "machine"


def _quote_word(word: str, shell: str) -> str:
    if not word or any(c in word for c in " \t\"'$`\\;&|<>()*?"):
        if shellenv.canonical(shell) in ("powershell", "cmd"):
            return f'"{word}"'
        return shlex.quote(word)
    return word


def command_line(ctx: click.Context, words: list[str], shell: str) -> list[str]:
    """How to run this command again, for the usage hint: the program, `-s PATH` when the store was
    given on the command line, the subcommand, then `words`."""
    line = [PROGRAM]
    root = ctx.find_root()
    if root.get_parameter_source("storage_path") == ParameterSource.COMMANDLINE and root.params.get("storage_path"):
        line += ["-s", _quote_word(str(root.params["storage_path"]), shell)]
    line.append(ctx.info_name or "env")
    return line + [_quote_word(w, shell) for w in words]


@click.command()
@click.argument("name", required=False)
@click.option("--shell", type=click.Choice(shellenv.SHELLS, case_sensitive=False),
              help="Shell to print lines for [default: detected from $SHELL; on Windows the parent process].")
@click.option("-u", "--unset", is_flag=True, help="Print the lines that unset the variables instead.")
@click.option("--no-proxy", is_flag=True, help="Add the machine's IP to NO_PROXY (or no_proxy, if that is set).")
@pass_app
def env(app: App, name: str | None, shell: str | None, unset: bool, no_proxy: bool) -> None:
    """Print the shell lines that point the docker client at a machine: eval $(machine env NAME)."""
    ctx = click.get_current_context()
    used_shell = shell.lower() if shell else shellenv.detect_shell()
    words = [f"--shell={shell}"] if shell else []
    words += ["--no-proxy"] if no_proxy else []
    if unset:
        if name is not None:
            raise UsageError("Expected no machine name when the -u flag is present",
                             f"Run '{PROGRAM} env -u' alone: it unsets the variables of whichever machine was set.")
        words += ["-u"]
        hint = shellenv.usage_hint(used_shell, command_line(ctx, words, used_shell))
        proxy_var = shellenv.no_proxy_from_env()[0] if no_proxy else None
        click.echo(shellenv.render(used_shell, shellenv.unset_lines(proxy_var), hint), nl=False)
        return
    target = client_target(app.store, app.name_or_default(name), app.progress, app.debug)
    proxy = None
    if no_proxy:
        if not target.host:
            raise UsageError(f"Machine {target.name!r} has no host address in its URL {target.url}",
                             "--no-proxy needs a TCP or SSH engine URL.")
        var, value = shellenv.no_proxy_from_env()
        proxy = (var, shellenv.with_no_proxy(value, target.host))
    lines = shellenv.set_lines(name=target.name, host=target.url,
                               cert_path=str(target.cert_dir) if target.cert_dir else None,
                               no_proxy=proxy, windows=os.name == "nt")
    hint = shellenv.usage_hint(used_shell, command_line(ctx, words + ([name] if name else []), used_shell))
    click.echo(shellenv.render(used_shell, lines, hint), nl=False)


def go_quote(text: str) -> str:
    """A double-quoted string as Go's %q prints it (backslashes and quotes escaped)."""
    return json.dumps(text, ensure_ascii=False)


@click.command()
@click.argument("name", required=False)
@pass_app
def config(app: App, name: str | None) -> None:
    """Print the docker client flags for a machine: docker $(machine config NAME) ps."""
    target = client_target(app.store, app.name_or_default(name), app.progress, app.debug)
    if target.cert_dir is None:
        click.echo(f"-H={target.url}")
        return
    d = target.cert_dir
    ca, cert, key = (go_quote(str(d / f)) for f in machinedir.CLIENT_TLS_FILES)
    click.echo(f"--tlsverify\n--tlscacert={ca}\n--tlscert={cert}\n--tlskey={key}\n-H={target.url}")
