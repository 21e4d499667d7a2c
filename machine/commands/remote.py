"""`machine ssh`: log in to a machine or run a command on it, with its key and pinned host key."""

from __future__ import annotations

import click

from machine.app import App, pass_app
from machine.errors import UsageError


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
@click.option("-t", "force_tty", flag_value=True, default=None, help="Force a TTY (as ssh -t).")
@click.option("-T", "force_tty", flag_value=False, help="Never allocate a TTY (as ssh -T).")
@click.option("--native", is_flag=True, help="Use the built-in SSH client (paramiko) instead of the system ssh.")
@pass_app
@click.pass_context
def ssh(ctx: click.Context, app: App, name: str, words: tuple[str, ...], force_tty: bool | None,
        native: bool) -> None:
    """Log in to a machine, or run COMMAND on it (its exit status is ours).

    \b
    machine ssh [-t|-T] NAME [SSH OPTIONS] [--] [COMMAND...]
    Options after NAME are the system ssh's (-L, -R, -D, -N, -o, ...); '--' ends them. A TTY is
    allocated when stdin is a terminal and a command is given (as ssh -t); -T refuses one.
    The system ssh is used when found (docker-machine's "external" client), else the built-in one
    (paramiko, commands only, no ssh options: docker-machine's "native" client)."""
    import sys

    from machine import orchestrator, process
    from machine.commands.sshargs import split
    from machine.provision.sshclient import ssh_argv, write_known_hosts

    parsed = split(list(words))
    if force_tty is not None and parsed.tty is None:
        parsed.tty = force_tty
    name = app.existing(name)
    access = orchestrator.ssh_access(app.store, name, app.progress, app.debug)  # a machine out of reach says so first
    client = None if native else process.which("ssh")
    if client:
        write_known_hosts(access.known_hosts, access.host, access.port, access.host_key)
        tty = parsed.wants_tty(sys.stdin.isatty())
        options = (["-t"] if tty else ["-T"] if parsed.tty is False else []) + parsed.options
        ctx.exit(process.exec_interactive(ssh_argv(client, access.key_file, access.known_hosts, access.user,
                                                   access.host, access.port, parsed.command, options)))
    if not parsed.command:
        raise UsageError("No ssh client found for an interactive login",
                         "Install OpenSSH's client, or give a command to run: machine ssh NAME COMMAND")
    if parsed.options or parsed.tty:
        raise UsageError(f"The built-in SSH client does not take ssh options ({' '.join(parsed.options or ['-t'])})",
                         "Install OpenSSH's client (ssh on PATH) and run without --native.")
    import shlex

    command = parsed.command
    with orchestrator.ssh_session(app.store, name, app.progress, app.debug, timeout=60) as session:
        res = session.run(" ".join(shlex.quote(c) for c in command) if len(command) > 1 else command[0],
                          sudo=False, check=False)
    click.echo(res.stdout, nl=False)
    click.echo(res.stderr, nl=False, err=True)
    ctx.exit(res.returncode)
