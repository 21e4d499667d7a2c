"""`machine scp`: copy files between this host and a machine, or between two machines (`m1:/a m2:/b`,
streamed through this host, as `scp -3`), over SFTP with each machine's key and pinned host key.
-d (delta, docker-machine's rsync mode) runs the system rsync over the system ssh with the same key
and pinned known_hosts; it needs rsync here and on the machine."""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
from pathlib import Path

import click

from machine.app import App, pass_app
from machine.errors import HostNotUsable, SSHError, UsageError

_REMOTE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*):(.*)$")


def parse_location(text: str) -> tuple[str | None, str]:
    """`machine:path` -> (machine, path); a local path -> (None, path). `C:\\x` and `./a:b` stay local."""
    m = _REMOTE.match(text)
    if m and not (len(m.group(1)) == 1 and os.name == "nt"):
        return m.group(1), m.group(2)
    return None, text


def _folder(refusal: str, recursive: bool, sftp=None, made: str = "") -> None:  # noqa: ANN001
    """A folder to copy: refused without -r (saying `refusal`); else `made` is made on `sftp` (it may exist)."""
    if not recursive:
        raise UsageError(refusal, "Use -r to copy directories.")
    if sftp is not None:
        with contextlib.suppress(OSError):
            sftp.mkdir(made)


def _upload(sftp, local: Path, remote: str, recursive: bool) -> int:  # noqa: ANN001
    if local.is_dir():
        _folder(f"{local} is a directory", recursive, sftp, remote)
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
        _folder(f"{remote} is a directory on the machine", recursive)
        local.mkdir(parents=True, exist_ok=True)
        return sum(_download(sftp, posixpath.join(remote, e.filename), local / e.filename, recursive)
                   for e in sftp.listdir_attr(remote))
    sftp.get(remote, str(local))
    os.chmod(local, stat.S_IMODE(st.st_mode or 0o644))
    return 1


def _between(src, dst, src_path: str, dst_path: str, recursive: bool) -> int:  # noqa: ANN001 - two SFTP clients
    st = src.stat(src_path)
    if stat.S_ISDIR(st.st_mode or 0):
        _folder(f"{src_path} is a directory on the source machine", recursive, dst, dst_path)
        return sum(_between(src, dst, posixpath.join(src_path, e.filename), posixpath.join(dst_path, e.filename),
                            recursive) for e in src.listdir_attr(src_path))
    with src.open(src_path, "rb") as reader, dst.open(dst_path, "wb") as writer:
        reader.prefetch()
        while chunk := reader.read(1 << 16):
            writer.write(chunk)
    dst.chmod(dst_path, stat.S_IMODE(st.st_mode or 0o644))
    return 1


def _into_dir(sftp, remote: str, name: str) -> str:  # noqa: ANN001
    try:
        if stat.S_ISDIR(sftp.stat(remote).st_mode or 0):
            return posixpath.join(remote, name)
    except OSError:
        pass
    return remote


def _machine_to_machine(app: App, src: tuple[str, str], dst: tuple[str, str], recursive: bool) -> int:
    from machine import orchestrator

    (src_name, src_path), (dst_name, dst_path) = src, dst
    src_name, dst_name = app.existing(src_name), app.existing(dst_name)
    with orchestrator.ssh_session(app.store, src_name, app.progress, app.debug, timeout=60) as a, \
            orchestrator.ssh_session(app.store, dst_name, app.progress, app.debug, timeout=60) as b:
        remote = _into_dir(b.sftp, dst_path or ".", posixpath.basename((src_path or ".").rstrip("/")))
        return _between(a.sftp, b.sftp, src_path or ".", remote, recursive)


def _rsync(app: App, name: str, source: str, destination: str, recursive: bool) -> None:
    """Delta copy: the system rsync over the system ssh, with the machine's key and pinned host key."""
    import shlex

    from machine import orchestrator, process
    from machine.provision.sshclient import ssh_options, write_known_hosts

    rsync, ssh = process.which("rsync"), process.which("ssh")
    if not (rsync and ssh):
        raise HostNotUsable("scp -d needs rsync and ssh on this host", "Install rsync and OpenSSH's client.")
    access = orchestrator.ssh_access(app.store, name, app.progress, app.debug)
    write_known_hosts(access.known_hosts, access.host, access.port, access.host_key)
    shell = shlex.join([ssh, *ssh_options(access.key_file, access.known_hosts, access.port)])
    side = f"{access.user}@{access.host}:"

    def word(location: str) -> str:
        machine, path = parse_location(location)
        return side + (path or ".") if machine else path

    flags = "-a" if recursive else "-lptgoD"  # archive without -r copies no directories, as scp without -r
    argv = [rsync, flags, "--partial", "-e", shell, word(source), word(destination)]
    if process.exec_interactive(argv) != 0:
        raise SSHError("rsync failed (see its message above)",
                       "Check the paths, and that the machine has rsync installed (scp without -d needs none).")


@click.command()
@click.argument("source")
@click.argument("destination")
@click.option("-r", "--recursive", is_flag=True, help="Copy directories recursively.")
@click.option("-d", "--delta", is_flag=True,
              help="Send only the differences (rsync over ssh; needs rsync here and on the machine).")
@pass_app
def scp(app: App, source: str, destination: str, recursive: bool, delta: bool) -> None:
    """Copy files: machine scp [-r] [-d] SRC DST, each a local path or MACHINE:PATH (both may be machines)."""
    from machine import orchestrator

    src_machine, src_path = parse_location(source)
    dst_machine, dst_path = parse_location(destination)
    if not (src_machine or dst_machine):
        raise UsageError("One of SRC and DST must be MACHINE:PATH",
                         "Examples: machine scp ./file dev:/tmp/   machine scp dev:/etc/os-release .   "
                         "machine scp m1:/a m2:/b")
    if src_machine and dst_machine:
        if delta:
            raise UsageError("-d copies between this host and one machine", "Copy between machines without -d.")
        count = _machine_to_machine(app, (src_machine, src_path), (dst_machine, dst_path), recursive)
        app.progress.info(f"Copied {count} file(s).")
        return
    name = app.existing(src_machine or dst_machine)
    if delta:
        _rsync(app, name, source, destination, recursive)
        return
    with orchestrator.ssh_session(app.store, name, app.progress, app.debug, timeout=60) as session:
        sftp = session.sftp
        try:
            if dst_machine:
                local = Path(src_path).expanduser()
                if not local.exists():
                    raise UsageError(f"{local} does not exist", "Check the source path.")
                count = _upload(sftp, local, _into_dir(sftp, dst_path or ".", local.name), recursive)
            else:
                remote = src_path or "."
                local = Path(dst_path).expanduser()
                if local.is_dir():
                    local = local / posixpath.basename(remote.rstrip("/"))
                count = _download(sftp, remote, local, recursive)
        except OSError as e:
            raise SSHError(f"Copying failed: {e}", "Check the paths and the permissions on the machine.") from None
    app.progress.info(f"Copied {count} file(s).")
