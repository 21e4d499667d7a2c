"""The reverse-sftp share server (machine/shares/sftpserver.py) against a real paramiko SFTP client, wired as in a
machine: the host is the SSH client and opens an `exec` session; on the guest's end of that channel (here a
paramiko SSH server in this process, over a socketpair) the SFTP client speaks, as sshfs -o passive does."""

from __future__ import annotations

import os
import queue
import socket
import stat
import threading
from pathlib import Path

import paramiko
import pytest

from machine.shares import sftpserver


class GuestSSH(paramiko.ServerInterface):
    """The guest's sshd: lets the host in and hands each exec'd channel to the test."""

    def __init__(self) -> None:
        self.commands: queue.Queue = queue.Queue()

    def get_allowed_auths(self, username: str) -> str:
        return "none"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.commands.put((channel, command))
        return True


@pytest.fixture
def connect(tmp_path: Path):
    """connect(root, read_only) -> an SFTP client whose requests the share server for `root` answers."""
    made = []

    def make(root: Path, read_only: bool = False) -> paramiko.SFTPClient:
        host_sock, guest_sock = socket.socketpair()
        guest = paramiko.Transport(guest_sock)
        guest.add_server_key(paramiko.Ed25519Key.from_private_key_file(str(_host_key(tmp_path))))
        sshd = GuestSSH()
        guest.start_server(event=threading.Event(), server=sshd)  # negotiates in its thread
        host = paramiko.Transport(host_sock)
        host.connect()
        host.auth_none("root")
        chan = host.open_session()
        chan.exec_command("sshfs -o passive :/ /mnt")
        server = threading.Thread(target=sftpserver.serve, args=(chan, str(root), read_only), daemon=True)
        server.start()
        guest_chan, command = sshd.commands.get(timeout=10)
        assert command.startswith(b"sshfs")
        client = paramiko.SFTPClient(guest_chan)
        made.append((client, host, guest, server))
        return client

    yield make
    for client, host, guest, server in made:
        client.close()
        server.join(timeout=10)
        assert not server.is_alive(), "the server did not end when the client closed the channel"
        host.close()
        guest.close()


def _host_key(tmp_path: Path) -> Path:
    path = tmp_path / "guest_host_key"
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
    return path


@pytest.fixture
def share(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello from the host\n")
    (tmp_path / "secret.txt").write_text("outside the share\n")
    return root


def test_read_write_list_and_files_belong_to_the_host_user(connect, share: Path) -> None:
    sftp = connect(share)
    with sftp.open("/hello.txt") as f:
        assert f.read() == b"hello from the host\n"
    with sftp.open("/sub/new.txt", "w") as f:
        f.write(b"x" * 300_000)
    made = share / "sub" / "new.txt"
    assert made.read_bytes() == b"x" * 300_000
    assert made.stat().st_uid == os.getuid() and made.stat().st_gid == os.getgid()
    assert sorted(sftp.listdir("/")) == ["hello.txt", "sub"]
    with sftp.open("/sub/new.txt", "r+") as f:  # positional writes in the middle keep the rest
        f.seek(10)
        f.write(b"MIDDLE")
    assert made.read_bytes()[8:18] == b"xxMIDDLExx" and made.stat().st_size == 300_000
    sftp.truncate("/sub/new.txt", 5)
    assert made.read_bytes() == b"xxxxx"
    assert sftp.normalize(".") == "/" and sftp.normalize("/sub/../sub") == "/sub"


def test_modes_are_kept_and_chown_is_ignored(connect, share: Path) -> None:
    sftp = connect(share)
    sftp.chmod("/hello.txt", 0o751)
    assert stat.S_IMODE((share / "hello.txt").stat().st_mode) == 0o751
    assert stat.S_IMODE(sftp.stat("/hello.txt").st_mode) == 0o751
    sftp.mkdir("/made", 0o700)
    assert stat.S_IMODE((share / "made").stat().st_mode) == 0o700
    sftp.utime("/hello.txt", (1_000_000, 2_000_000))
    assert (share / "hello.txt").stat().st_mtime == 2_000_000
    with sftp.open("/sub/f", "w") as f:  # on the open handle (FSETSTAT)
        f.write(b"123456")
        f.chmod(0o600)
        f.truncate(3)
    assert (share / "sub" / "f").read_bytes() == b"123" and stat.S_IMODE((share / "sub" / "f").stat().st_mode) == 0o600
    sftp.chown("/hello.txt", 0, 0)  # the guest's root asks: accepted, the file stays the host user's
    assert (share / "hello.txt").stat().st_uid == os.getuid()


def test_dotdot_and_absolute_paths_stay_inside_the_share(connect, share: Path, tmp_path: Path) -> None:
    sftp = connect(share)
    for path in ("/../secret.txt", "../secret.txt", "/sub/../../secret.txt", "/../../../../" + str(tmp_path)[1:]
                 + "/secret.txt"):
        with pytest.raises(FileNotFoundError):  # it names share/secret.txt, which does not exist
            sftp.open(path)
    with sftp.open("/../hello.txt") as f:  # `..` stops at the share's root
        assert f.read() == b"hello from the host\n"
    with sftp.open("/../escaped.txt", "w") as f:
        f.write(b"y")
    assert (share / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert sftp.normalize("/../..") == "/"


def test_symlinks_out_of_the_share_are_not_followed(connect, share: Path, tmp_path: Path) -> None:
    sftp = connect(share)
    os.symlink(tmp_path / "secret.txt", share / "to-secret")
    os.symlink(tmp_path, share / "to-parent")
    with pytest.raises(PermissionError):
        sftp.open("/to-secret")
    with pytest.raises(PermissionError):
        sftp.open("/to-parent/secret.txt")
    with pytest.raises(PermissionError):
        sftp.open("/to-parent/planted.txt", "w")  # a folder link out of the share is not a way to write
    assert not (tmp_path / "planted.txt").exists()
    with pytest.raises(PermissionError):
        sftp.listdir("/to-parent")
    with pytest.raises(PermissionError):
        sftp.stat("/to-secret")
    assert stat.S_ISLNK(sftp.lstat("/to-secret").st_mode)  # the link itself is visible, as a link
    assert sftp.readlink("/to-secret") == str(tmp_path / "secret.txt")
    os.symlink(tmp_path / "not-yet", share / "dangling-out")
    with pytest.raises(PermissionError):  # creating through a dangling link out of the share
        sftp.open("/dangling-out", "w")
    assert not (tmp_path / "not-yet").exists()
    sftp.remove("/to-secret")  # removing the link removes the link, not its target
    assert (tmp_path / "secret.txt").read_text() == "outside the share\n"


def test_symlinks_inside_the_share_work(connect, share: Path) -> None:
    sftp = connect(share)
    sftp.symlink("hello.txt", "/sub/../link")  # target stored as given, link made in the share
    assert os.readlink(share / "link") == "hello.txt"
    with sftp.open("/link") as f:
        assert f.read() == b"hello from the host\n"
    sftp.symlink("/etc/passwd", "/abs-link")  # an absolute target is text: the guest resolves it in its tree
    assert os.readlink(share / "abs-link") == "/etc/passwd"
    with pytest.raises(PermissionError):  # but the host never follows it
        sftp.open("/abs-link")


def test_rename_replaces_and_delete_works(connect, share: Path) -> None:
    sftp = connect(share)
    (share / "a").write_text("A")
    (share / "b").write_text("B")
    sftp.rename("/a", "/b")  # plain SFTP rename, POSIX semantics (editors save this way)
    assert (share / "b").read_text() == "A" and not (share / "a").exists()
    (share / "c").write_text("C")
    sftp.posix_rename("/c", "/sub/b")
    assert (share / "sub" / "b").read_text() == "C"
    sftp.rename("/b", "/../../outside-b")  # normalised into the share
    assert (share / "outside-b").read_text() == "A"
    os.symlink(share.parent, share / "up")
    with pytest.raises(PermissionError):  # through a folder link out of the share
        sftp.rename("/outside-b", "/up/stolen")
    assert not (share.parent / "stolen").exists() and (share / "outside-b").exists()
    sftp.remove("/sub/b")
    sftp.mkdir("/gone")
    sftp.rmdir("/gone")
    assert not (share / "gone").exists() and not (share / "sub" / "b").exists()
    (share / "sub" / "keep").write_text("k")
    with pytest.raises(OSError):
        sftp.rmdir("/sub")  # not empty
    with pytest.raises(OSError):
        sftp.remove("/sub")  # a folder is not removed as a file


def test_read_only_share_refuses_every_change(connect, share: Path) -> None:
    sftp = connect(share, read_only=True)
    with sftp.open("/hello.txt") as f:
        assert f.read() == b"hello from the host\n"
    attempts = [lambda: sftp.open("/hello.txt", "w"), lambda: sftp.open("/new", "w"),
                lambda: sftp.open("/hello.txt", "a"), lambda: sftp.open("/hello.txt", "r+"),
                lambda: sftp.remove("/hello.txt"), lambda: sftp.rename("/hello.txt", "/x"),
                lambda: sftp.mkdir("/d"), lambda: sftp.rmdir("/sub"), lambda: sftp.symlink("hello.txt", "/l"),
                lambda: sftp.chmod("/hello.txt", 0o777), lambda: sftp.truncate("/hello.txt", 0),
                lambda: sftp.utime("/hello.txt", (1, 1))]
    before = stat.S_IMODE((share / "hello.txt").stat().st_mode)
    for attempt in attempts:
        with pytest.raises(PermissionError):
            attempt()
    assert sorted(os.listdir(share)) == ["hello.txt", "sub"]
    assert (share / "hello.txt").read_text() == "hello from the host\n"
    assert stat.S_IMODE((share / "hello.txt").stat().st_mode) == before
