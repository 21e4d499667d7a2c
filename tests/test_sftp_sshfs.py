"""The agent's reverse-sftp mount (machine/agent/sftpmounts.py) with the real `sshfs -o passive` on this host: the
"guest" is a paramiko SSH server in this process that runs each exec'd command with sh, as sshd would; the share
is mounted on a local folder through FUSE. Needs root, /dev/fuse and sshfs (Debian: sshfs); skipped otherwise
(the real-VM test tests/vm/test_shares_sftp_vm.py covers the same in a guest)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paramiko
import pytest

from machine.agent import sftpmounts
from tests.test_sftp_share import _host_key

needs_sshfs = pytest.mark.skipif(not (shutil.which("sshfs") and os.path.exists("/dev/fuse") and os.geteuid() == 0),
                                reason="needs root, /dev/fuse and sshfs")


class ShellGuest(paramiko.ServerInterface):
    """A guest's sshd: each exec request runs `sh -c COMMAND` with the channel as its stdin/stdout/stderr."""

    def get_allowed_auths(self, username: str) -> str:
        return "none"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self._run, args=(channel, command.decode()), daemon=True).start()
        return True

    @staticmethod
    def _run(chan: paramiko.Channel, command: str) -> None:
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

        def into_proc() -> None:
            try:
                while data := chan.recv(65536):
                    proc.stdin.write(data)
                    proc.stdin.flush()
            except (OSError, ValueError):
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass

        def out(read, send) -> None:
            try:
                while data := read(65536):
                    send(data)
            except OSError:  # the host closed the channel (the agent stopped): the command ends on EOF
                pass

        threads = [threading.Thread(target=into_proc, daemon=True),
                   threading.Thread(target=out, args=(proc.stdout.read1, chan.sendall), daemon=True),
                   threading.Thread(target=out, args=(proc.stderr.read1, chan.sendall_stderr), daemon=True)]
        for t in threads:
            t.start()
        rc = proc.wait()
        threads[1].join(5)
        threads[2].join(5)
        chan.send_exit_status(rc)
        chan.close()


@pytest.fixture
def guest_link(tmp_path: Path):
    host_sock, guest_sock = socket.socketpair()
    guest = paramiko.Transport(guest_sock)
    guest.add_server_key(paramiko.Ed25519Key.from_private_key_file(str(_host_key(tmp_path))))
    guest.start_server(event=threading.Event(), server=ShellGuest())
    host = paramiko.Transport(host_sock)
    host.connect()
    host.auth_none("root")
    yield host
    host.close()
    guest.close()


def run_local(command: str) -> int:
    return subprocess.run(["sh", "-c", command], capture_output=True).returncode


@needs_sshfs
def test_sshfs_passive_mount_through_the_agents_runner(guest_link, tmp_path: Path) -> None:
    share = tmp_path / "src"
    share.mkdir()
    (share / "from-host.txt").write_text("hello from the host\n")
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", share / "out-link")
    mnt = tmp_path / "mnt" / "deep"
    stop = threading.Event()
    restarted: list[list[str]] = []
    mount = sftpmounts.SFTPMount({"tag": "msh0", "host": str(share), "guest": str(mnt), "ro": False},
                                 lambda: guest_link, run_local, stop, lambda: None,
                                 containers=lambda guest: ["c1"] if guest == str(mnt) else [],
                                 restart=restarted.append)
    runner = threading.Thread(target=mount.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while mount.state != sftpmounts.MOUNTED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mount.state == sftpmounts.MOUNTED, mount.error
        assert restarted == [["c1"]]  # what ran before the mount is restarted once it is there
        assert (mnt / "from-host.txt").read_text() == "hello from the host\n"
        (mnt / "made-in-guest").mkdir()
        (mnt / "made-in-guest" / "f.txt").write_text("from the guest\n")
        made = share / "made-in-guest" / "f.txt"
        assert made.read_text() == "from the guest\n" and made.stat().st_uid == os.getuid()
        os.chmod(mnt / "made-in-guest" / "f.txt", 0o640)
        assert made.stat().st_mode & 0o777 == 0o640
        os.symlink("f.txt", mnt / "made-in-guest" / "link")  # sshfs sends (target, link) as OpenSSH does
        assert os.readlink(made.parent / "link") == "f.txt"
        (mnt / "made-in-guest" / "g.txt").write_text("new")
        os.rename(mnt / "made-in-guest" / "g.txt", mnt / "made-in-guest" / "f.txt")  # replaces
        assert made.read_text() == "new"
        with pytest.raises(PermissionError):
            (mnt / "out-link").read_text()  # the host does not follow a link out of the share
        (share / "later.txt").write_text("host change")
        time.sleep(1.5)  # the directory cache lives 1 s
        assert (mnt / "later.txt").read_text() == "host change"
        os.unlink(mnt / "later.txt")
        assert not (share / "later.txt").exists()
    finally:
        stop.set()
        mount.close()
        runner.join(15)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    assert not runner.is_alive()


def test_containers_restarted_after_a_mount_are_those_binding_the_share() -> None:
    rows = [{"Id": "a", "Mounts": [{"Type": "bind", "Source": "/home/me/src"}]},
            {"Id": "b", "Mounts": [{"Type": "bind", "Source": "/home/me"}]},
            {"Id": "c", "Mounts": [{"Type": "bind", "Source": "/home/me-too/x"}]},
            {"Id": "d", "Mounts": [{"Type": "volume", "Source": "/home/me/src/vol"}]},
            {"Id": "e", "Mounts": None}]
    assert sftpmounts.bind_users(rows, "/home/me/src") == ["a"]
    assert sftpmounts.bind_users(rows, "/home/me") == ["a", "b"]


def test_the_guest_command_quotes_the_path_and_keeps_stdout_for_sftp() -> None:
    cmd = sftpmounts.guest_command("/home/o'neil/my src", read_only=True)
    assert "'/home/o'\"'\"'neil/my src'" in cmd
    assert cmd.startswith("exec 3>&1 1>&2;") and cmd.endswith("1>&3 3>&-")
    assert "-o passive,allow_other," in cmd and ",ro " in cmd
    assert ",ro " not in sftpmounts.guest_command("/src", read_only=False)


def test_a_start_waits_for_the_agent_to_report_its_sftp_mounts(tmp_path: Path) -> None:
    from machine.agent import control
    from machine.shares import hostplan

    entries = [{"tag": "msh0", "host": "/h/a", "guest": "/a", "ro": False},
               {"tag": "msh1", "host": "/h/b", "guest": "/b", "ro": True}]
    assert hostplan.wait_host_served(tmp_path, "9p", entries, True) is None  # mounted at boot: nothing to wait for
    assert hostplan.wait_host_served(tmp_path, "reverse-sftp", entries, False, timeout=1) == [
        f"share {e['host']}: not mounted (reverse-sftp needs the machine's agent, which does not run for this "
        f"machine)" for e in entries]
    # a process that looks like this machine's agent (its pid file and command line), and its status file
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "machine.agent",
                             str(tmp_path.resolve())])
    try:
        (tmp_path / control.PID_FILE).write_text(f"{proc.pid}\n")
        rows = [{"host": "/h/a", "state": "mounted"}, {"host": "/h/b", "state": "failed", "error": "sshfs: not found"}]
        control.write_status(tmp_path, {"pid": proc.pid + 1, "shares": [{**r, "state": "mounted"} for r in rows]})
        assert hostplan.wait_host_served(tmp_path, "reverse-sftp", entries, True, timeout=1.5) == [
            f"share {e['host']}: not mounted yet (reverse-sftp; the agent keeps trying, see its log)"
            for e in entries]  # a previous agent's status (another pid) does not count
        control.write_status(tmp_path, {"pid": proc.pid, "shares": rows})
        assert hostplan.wait_host_served(tmp_path, "reverse-sftp", entries, True, timeout=60) == [
            "share /h/b: sshfs: not found (reverse-sftp; the agent keeps trying, see its log)"]
        control.write_status(tmp_path, {"pid": proc.pid, "shares": [{**r, "state": "mounted"} for r in rows]})
        assert hostplan.wait_host_served(tmp_path, "reverse-sftp", entries, True, timeout=60) == []
    finally:
        proc.kill()
        proc.wait()
