"""ssh and scp: log in to a machine or copy files to and from it, with its key and pinned host key."""

from __future__ import annotations

import os
import posixpath
import re
import stat
from pathlib import Path

import click

from machine import machinedir
from machine.app import App, pass_app
from machine.errors import InvalidState, Unsupported, UsageError

_REMOTE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*):(.*)$")


def _target(app: App, name: str):  # noqa: ANN202 - (cfg, driver, endpoint)
    from machine import orchestrator

    cfg = app.store.load(name)
    driver = orchestrator.driver_for(app.store, cfg, app.debug)
    if not driver.features.managed_engine:
        raise Unsupported(f"Machine {name!r} (driver {cfg.driver}) has no SSH access",
                          f"Reach its engine instead: eval $(machine env {name})")
    orchestrator.require_running(driver, name)
    ep = driver.ssh_endpoint()
    if ep is None:
        raise InvalidState(f"Machine {name!r} has no SSH endpoint", f"Check it: machine status {name}")
    if not cfg.ssh.get("host_key"):
        if not (cfg.origin or cfg.imported_from):
            raise InvalidState(f"Machine {name!r} has no pinned SSH host key yet",
                               f"Provision it first (this pins the key): machine provision {name}")
        # docker-machine pins nothing: learn the key on first contact, as ssh's accept-new does
        cfg = orchestrator.pin_host_key(app.store, name, app.progress, app.debug)
    return cfg, driver, ep


def known_hosts_path(app: App, cfg) -> Path:  # noqa: ANN001 - a MachineConfig
    """Our known_hosts file for the machine: in its folder, or for a docker-machine record beside its lock
    file (docker-machine's folder is not written)."""
    if cfg.origin:
        return app.store.machines_dir / f".{cfg.name}.{machinedir.KNOWN_HOSTS}"
    return app.store.machine_dir(cfg.name) / machinedir.KNOWN_HOSTS


def write_known_hosts(path: Path, host: str, port: int, host_key: str) -> None:
    from machine.atomicfile import write_atomic

    name = host if port == 22 else f"[{host}]:{port}"
    write_atomic(path, f"{name} {' '.join(host_key.split()[:2])}\n", mode=0o644)


def ssh_argv(ssh: str, key: Path, known_hosts: Path, user: str, host: str, port: int,
             command: tuple[str, ...] | list[str] = (), options: list[str] | None = None) -> list[str]:
    """The system ssh's words: our key, pinned known_hosts, port first (ssh keeps the first value of an
    option, so a user's -o cannot unpin the host key), then the user's `options`, the host, `--` and `command`."""
    argv = [ssh, "-i", str(key), "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30", "-p", str(port),
            *(options or []), f"{user}@{host}"]
    if command:
        argv += ["--", *command]
    return argv


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

    from machine import process
    from machine.commands.sshargs import split
    from machine.provision.remote import key_file

    parsed = split(list(words))
    if force_tty is not None and parsed.tty is None:
        parsed.tty = force_tty
    name = app.existing(name)
    cfg, driver, ep = _target(app, name)
    user = cfg.ssh.get("user") or ep.user
    client = None if native else process.which("ssh")
    if client:
        known = known_hosts_path(app, cfg)
        write_known_hosts(known, ep.host, ep.port, cfg.ssh["host_key"])
        tty = parsed.wants_tty(sys.stdin.isatty())
        options = (["-t"] if tty else ["-T"] if parsed.tty is False else []) + parsed.options
        argv = ssh_argv(client, Path(key_file(app.store, cfg, driver)), known, user, ep.host, ep.port,
                        parsed.command, options)
        ctx.exit(process.exec_interactive(argv))
    if not parsed.command:
        raise UsageError("No ssh client found for an interactive login",
                         "Install OpenSSH's client, or give a command to run: machine ssh NAME COMMAND")
    if parsed.options or parsed.tty:
        raise UsageError(f"The built-in SSH client does not take ssh options ({' '.join(parsed.options or ['-t'])})",
                         "Install OpenSSH's client (ssh on PATH) and run without --native.")
    import shlex

    from machine.provision.remote import open_session

    command = parsed.command
    with open_session(app.store, cfg, driver, timeout=60) as session:
        res = session.run(" ".join(shlex.quote(c) for c in command) if len(command) > 1 else command[0],
                          sudo=False, check=False)
    click.echo(res.stdout, nl=False)
    click.echo(res.stderr, nl=False, err=True)
    ctx.exit(res.returncode)


def parse_location(text: str) -> tuple[str | None, str]:
    """`machine:path` -> (machine, path); a local path -> (None, path). `C:\\x` and `./a:b` stay local."""
    m = _REMOTE.match(text)
    if m and not (len(m.group(1)) == 1 and os.name == "nt"):
        return m.group(1), m.group(2)
    return None, text


def _upload(sftp, local: Path, remote: str, recursive: bool) -> int:  # noqa: ANN001
    if local.is_dir():
        if not recursive:
            raise UsageError(f"{local} is a directory", "Use -r to copy directories.")
        try:
            sftp.mkdir(remote)
        except OSError:
            pass
        count = 0
        for child in sorted(local.iterdir()):
            count += _upload(sftp, child, posixpath.join(remote, child.name), recursive)
        return count
    sftp.put(str(local), remote)
    sftp.chmod(remote, stat.S_IMODE(local.stat().st_mode))
    return 1


def _download(sftp, remote: str, local: Path, recursive: bool) -> int:  # noqa: ANN001
    st = sftp.stat(remote)
    if stat.S_ISDIR(st.st_mode or 0):
        if not recursive:
            raise UsageError(f"{remote} is a directory on the machine", "Use -r to copy directories.")
        local.mkdir(parents=True, exist_ok=True)
        return sum(_download(sftp, posixpath.join(remote, e.filename), local / e.filename, recursive)
                   for e in sftp.listdir_attr(remote))
    sftp.get(remote, str(local))
    os.chmod(local, stat.S_IMODE(st.st_mode or 0o644))
    return 1
