"""`machine completion SHELL`: the shell's completion script (click's), completing commands, options, machine
names (from the store's folders: no config read, no driver imported) and driver names (from the registry's list of
packages and entry points: no driver imported).

The script runs `machine` with _MACHINE_COMPLETE set; machine.cli then attaches the completers below to the
commands it loads (only then: a normal run does not import this module)."""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

COMPLETE_VAR = "_MACHINE_COMPLETE"  # machine.cli.COMPLETE_VAR
SHELLS = ("bash", "zsh", "fish", "powershell")
# commands whose NAME/NAMES argument is a new machine, not one of the store's
NEW_NAME_COMMANDS = ("create",)


def machine_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The store's machines whose name starts with what was typed (the store of -s/MACHINE_STORAGE_PATH)."""
    from machine.app import storage_root
    from machine.store import Store

    try:
        names = Store(storage_root(ctx.find_root().params.get("storage_path"))).names()
    except OSError:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def driver_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from machine import registry

    return [CompletionItem(n) for n in registry.names() if n.startswith(incomplete)]


def attach(name: str, command: click.Command) -> click.Command:
    """Give `command` (called `name`) the machine-name and driver-name completers; groups' subcommands too."""
    for param in command.params:
        if getattr(param, "_custom_shell_complete", None) is not None:
            continue
        if isinstance(param, click.Argument) and param.name in ("name", "names") and name not in NEW_NAME_COMMANDS:
            param._custom_shell_complete = machine_names  # click's slot for shell_complete=
        elif isinstance(param, click.Option) and param.name == "driver":
            param._custom_shell_complete = driver_names
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            attach(sub_name, sub)
    return command


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh, fish, powershell).

    \b
    bash:        eval "$(machine completion bash)"        (in ~/.bashrc)
    zsh:         eval "$(machine completion zsh)"         (in ~/.zshrc)
    fish:        machine completion fish > ~/.config/fish/completions/machine.fish
    powershell:  machine completion powershell | Out-String | Invoke-Expression   (in $PROFILE)
    """
    cls = get_completion_class(shell)
    if cls is None:
        from importlib.metadata import version

        from machine.errors import Unsupported

        raise Unsupported(f"The installed click ({version('click')}) has no {shell} completion",
                          "PowerShell completion needs click 8.5 or later: pip install -U click")
    root = click.get_current_context().find_root().command
    click.echo(cls(root, {}, "machine", COMPLETE_VAR).source())
