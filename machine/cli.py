"""The `machine` command line. Subcommands are imported lazily, so commands that only read the
store (env, config, url, ls -q, active) import no driver, SSH or WinRM library."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from machine import __version__, signals
from machine.app import App, storage_root
from machine.errors import ExitCode, MachineError
from machine.progress import Progress
from machine.store import Store

COMPLETE_VAR = "_MACHINE_COMPLETE"  # set by the completion scripts (machine completion SHELL)
# command name -> "module:function" under machine.commands
COMMANDS: dict[str, str] = {
    "active": "info:active",
    "completion": "completion:completion",
    "config": "env:config",
    "create": "create:create",
    "doctor": "doctor:doctor",
    "env": "env:env",
    "import": "dmimport:import_",
    "inspect": "info:inspect",
    "install-plugin": "plugin:install_plugin",
    "ip": "info:ip",
    "kill": "lifecycle:kill",
    "ls": "ls:ls",
    "os": "machineos:os_group",
    "ports": "ports:ports",
    "provision": "provisioning:provision",
    "regenerate-certs": "provisioning:regenerate_certs",
    "restart": "lifecycle:restart",
    "rm": "lifecycle:rm",
    "scp": "copy:scp",
    "set": "set:set_",
    "ssh": "remote:ssh",
    "start": "lifecycle:start",
    "status": "lifecycle:status",
    "stop": "lifecycle:stop",
    "suspend": "lifecycle:suspend",
    "swarm": "swarm:swarm",
    "upgrade": "provisioning:upgrade",
    "url": "info:url",
    "use": "use:use",
    "version": "info:version",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if not target:
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(f"machine.commands.{module}"), attr)
        if COMPLETE_VAR in os.environ:  # the shell asks for completions: machine and driver names too
            from machine.commands.completion import attach

            attach(name, command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-D", "--debug", is_flag=True, help="Show debug output (remote commands, tracebacks).")
@click.option("-s", "--storage-path", envvar="MACHINE_STORAGE_PATH", metavar="PATH",
              help="Machine store root [env MACHINE_STORAGE_PATH; default ~/.docker/machine].")
@click.version_option(__version__, "-v", "--version", prog_name="machine")
@click.pass_context
def cli(ctx: click.Context, debug: bool, storage_path: str | None) -> None:
    """Create and manage lightweight Linux VMs as Docker hosts."""
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = App(store=Store(storage_root(storage_path)), debug=debug, progress=Progress())


def _debug_requested(args: list[str]) -> bool:
    """-D/--debug among the global options only: before the command name (a machine named "-D" after
    `--`, or a remote command's -D, is not ours)."""
    words = iter(args)
    for word in words:
        if word in ("-D", "--debug"):
            return True
        if word in ("-s", "--storage-path"):
            next(words, None)
        elif word == "--" or not word.startswith("-"):
            return False
    return False


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; print typed errors as message + hint, never a traceback (machine.entry calls it)."""
    debug = _debug_requested(sys.argv[1:] if argv is None else argv)
    try:
        rc = cli.main(args=argv, prog_name="machine", standalone_mode=False)
    except MachineError as e:
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(f"Error: {e.message}", err=True)
        if e.hint:
            click.echo(f"Hint: {e.hint}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.ERROR)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM/SIGHUP (signals.Terminated); undo paths have run
        click.echo("Interrupted.", err=True)
        sys.exit(signals.exit_code(e))
    except BrokenPipeError:
        sys.exit(ExitCode.OK)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    sys.exit(rc if isinstance(rc, int) else ExitCode.OK)
