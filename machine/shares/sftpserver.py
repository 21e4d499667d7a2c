"""The host's side of the reverse-sftp share mechanism: an SFTP server (paramiko's protocol engine) confined to
one shared folder, run over any paramiko channel. The guest's `sshfs -o passive` is the client: it speaks SFTP
on its stdin/stdout, which the host agent connects to an SSH session channel (no listening socket on the host).

Rules the server enforces, whatever the client sends:
- every path is taken relative to the share (`..` and absolute paths stop at its root), and a path whose
  parent folders, or (for operations that follow links) whose target, resolve outside the share is refused;
- a read-only share refuses every change (open for writing, create, remove, rename, mkdir, symlink, setstat);
- files are made by the host process, so they belong to the host user; a chown from the guest is accepted and
  ignored (the guest's root maps to the host user, as with rootless containers).
Requests are served one at a time (paramiko's loop), so a check and the operation it guards are not raced by
the guest itself. Names must be UTF-8 (SFTP v3 strings).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat as statmod
from typing import Any

import paramiko
from paramiko.sftp import CMD_VERSION
from paramiko.sftp_attr import SFTPAttributes
from paramiko.sftp_handle import SFTPHandle
from paramiko.sftp_server import SFTPServer
from paramiko.sftp_si import SFTPServerInterface

OK = paramiko.SFTP_OK
DENIED = paramiko.SFTP_PERMISSION_DENIED
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
EXTENSIONS = ("posix-rename@openssh.com", "1")  # rename that replaces the target (what sshfs uses when offered)


class Escape(PermissionError):
    """A path that leads out of the share."""


def _status(e: OSError) -> int:
    return SFTPServer.convert_errno(e.errno) if e.errno else paramiko.SFTP_FAILURE


class ShareRoot:
    """Maps the client's paths onto one host folder and refuses the ones that leave it."""

    def __init__(self, root: str, read_only: bool = False) -> None:
        self.root = os.path.realpath(root)
        self.read_only = read_only

    @staticmethod
    def virtual(path: str) -> str:
        """The client's path made absolute and normal: `..` cannot climb above `/` (the share's root)."""
        return posixpath.normpath("/" + (path or "/").replace("\\", "/")).replace("//", "/")

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def host(self, path: str, follow: bool) -> str:
        """The host path of client path `path`. Its parent folders must resolve inside the share; with
        `follow` (the operation follows a final symlink), so must the path itself."""
        rel = self.virtual(path).lstrip("/")
        host = os.path.join(self.root, *rel.split("/")) if rel else self.root
        if "\0" in host:
            raise Escape(errno.EINVAL, "NUL in path")
        if host != self.root and not self._inside(os.path.realpath(os.path.dirname(host))):
            raise Escape(errno.EACCES, f"{path}: outside the share")
        if follow and not self._inside(os.path.realpath(host)):
            raise Escape(errno.EACCES, f"{path}: leads outside the share")
        return host


class ShareHandle(SFTPHandle):
    """An open file: positional reads and writes on the descriptor (no shared file offset)."""

    def __init__(self, fd: int, flags: int, share: ShareRoot, path: str) -> None:
        super().__init__(flags)
        self.fd, self.share, self.path = fd, share, path

    def read(self, offset: int, length: int) -> bytes | int:
        try:
            if hasattr(os, "pread"):
                return os.pread(self.fd, length, offset)
            os.lseek(self.fd, offset, os.SEEK_SET)  # Windows: no pread; requests are served one at a time
            return os.read(self.fd, length)
        except OSError as e:
            return _status(e)

    def write(self, offset: int, data: bytes) -> int:
        if self.share.read_only:
            return DENIED
        try:
            view = memoryview(data)
            while view:
                if hasattr(os, "pwrite"):
                    n = os.pwrite(self.fd, view, offset)
                else:
                    os.lseek(self.fd, offset, os.SEEK_SET)
                    n = os.write(self.fd, view)
                view, offset = view[n:], offset + n
        except OSError as e:
            return _status(e)
        return OK

    def stat(self) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.fstat(self.fd))
        except OSError as e:
            return _status(e)

    def chattr(self, attr: SFTPAttributes) -> int:
        if self.share.read_only:
            return DENIED
        try:
            set_attributes(attr, self.path, self.fd)
        except OSError as e:
            return _status(e)
        return OK

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def set_attributes(attr: SFTPAttributes, path: str, fd: int | None = None) -> None:
    """Apply an SFTP SETSTAT/FSETSTAT: size, permission bits, times (on the open descriptor where this OS can).
    Owner changes are ignored (see above)."""
    flags = attr._flags
    if flags & SFTPAttributes.FLAG_SIZE:
        if fd is not None:
            os.ftruncate(fd, attr.st_size)
        else:
            os.truncate(path, attr.st_size)
    if flags & SFTPAttributes.FLAG_PERMISSIONS:
        os.chmod(fd if fd is not None and os.chmod in os.supports_fd else path, statmod.S_IMODE(attr.st_mode))
    if flags & SFTPAttributes.FLAG_AMTIME:
        os.utime(fd if fd is not None and os.utime in os.supports_fd else path, (attr.st_atime, attr.st_mtime))


class ShareSFTP(SFTPServerInterface):
    """paramiko's request callbacks for one share. Every failure is an SFTP status, never an exception."""

    def __init__(self, server: Any, share: ShareRoot, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.share = share

    def _attrs(self, host: str, name: str, follow: bool) -> SFTPAttributes:
        attrs = SFTPAttributes.from_stat(os.stat(host) if follow else os.lstat(host), name)
        return attrs

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as e:
            return _status(e)
        except ValueError:
            return paramiko.SFTP_FAILURE

    def canonicalize(self, path: str) -> str:
        return self.share.virtual(path)

    def list_folder(self, path: str) -> list[SFTPAttributes] | int:
        def run() -> list[SFTPAttributes]:
            host = self.share.host(path, follow=True)
            out = []
            for name in os.listdir(host):
                try:
                    out.append(self._attrs(os.path.join(host, name), name, follow=False))
                except FileNotFoundError:  # removed while listing
                    continue
            return out
        return self._guard(run)

    def stat(self, path: str) -> SFTPAttributes | int:
        return self._guard(lambda: self._attrs(self.share.host(path, follow=True), posixpath.basename(path), True))

    def lstat(self, path: str) -> SFTPAttributes | int:
        return self._guard(lambda: self._attrs(self.share.host(path, follow=False), posixpath.basename(path), False))

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> ShareHandle | int:
        if self.share.read_only and flags & WRITE_FLAGS:
            return DENIED

        def run() -> ShareHandle:
            host = self.share.host(path, follow=True)
            mode = 0o666
            if attr is not None and attr._flags & SFTPAttributes.FLAG_PERMISSIONS:
                mode = statmod.S_IMODE(attr.st_mode)
            fd = os.open(host, flags | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0), mode)
            if os.path.isdir(host):  # an SFTP open is for files; opendir is separate
                os.close(fd)
                raise IsADirectoryError(errno.EISDIR, path)
            return ShareHandle(fd, flags, self.share, host)
        return self._guard(run)

    def _change(self, fn: Any, *args: Any) -> int:
        if self.share.read_only:
            return DENIED
        result = self._guard(fn, *args)
        return OK if result is None else result

    def remove(self, path: str) -> int:
        def run() -> None:
            host = self.share.host(path, follow=False)
            if os.path.isdir(host) and not os.path.islink(host):
                raise IsADirectoryError(errno.EISDIR, path)
            os.unlink(host)
        return self._change(run)

    def rename(self, oldpath: str, newpath: str) -> int:
        return self._change(lambda: os.replace(self.share.host(oldpath, follow=False),
                                               self.share.host(newpath, follow=False)))

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self.rename(oldpath, newpath)

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        mode = 0o777
        if attr is not None and attr._flags & SFTPAttributes.FLAG_PERMISSIONS:
            mode = statmod.S_IMODE(attr.st_mode)
        return self._change(lambda: os.mkdir(self.share.host(path, follow=False), mode))

    def rmdir(self, path: str) -> int:
        return self._change(lambda: os.rmdir(self.share.host(path, follow=False)))

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        return self._change(lambda: set_attributes(attr, self.share.host(path, follow=True)))

    def symlink(self, target_path: str, path: str) -> int:
        # the target is stored as given (the guest resolves it in its own tree); only where it is made is checked
        return self._change(lambda: os.symlink(target_path, self.share.host(path, follow=False)))

    def readlink(self, path: str) -> str | int:
        return self._guard(lambda: os.readlink(self.share.host(path, follow=False)))


class ChannelSFTPServer(SFTPServer):
    """paramiko's SFTP protocol loop on a channel we opened ourselves (an `exec` session whose remote command is
    the SFTP client), offering posix-rename."""

    def _send_server_version(self) -> int:
        from paramiko.message import Message
        from paramiko.sftp import _VERSION, CMD_INIT, SFTPError

        t, data = self._read_packet()
        if t != CMD_INIT:
            raise SFTPError("Incompatible sftp protocol")
        msg = Message()
        msg.add_int(_VERSION)
        msg.add(*EXTENSIONS)
        self._send_packet(CMD_VERSION, msg)
        return int.from_bytes(data[:4], "big")


def serve(channel: Any, root: str, read_only: bool = False) -> None:
    """Serve SFTP for the folder `root` on `channel` until the client closes it (blocks)."""
    share = ShareRoot(root, read_only)
    server = ChannelSFTPServer(channel, "sftp", None, ShareSFTP, share)
    try:
        server.start_subsystem("sftp", channel.get_transport(), channel)
    finally:
        server.finish_subsystem()
