"""`machine ssh` read as ssh reads its words (issue #15 point 4), against the real test sshd on 127.0.0.1
through a docker-machine generic record: `--` ends our options, the remote exit status is ours, -t/-T and
a TTY by default from a terminal (under a pseudo-terminal), -L passes through to the system ssh."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dockermachine_store import DockerMachineStore
from fakes.cli import run
from test_ssh import SSHServer, free_port, sshd  # noqa: F401 - the fixture

from machine.commands.sshargs import split
from machine.errors import UsageError


@pytest.fixture
def dm(store_root: Path) -> DockerMachineStore:
    return DockerMachineStore(store_root)


@pytest.fixture
def gen(dm: DockerMachineStore, store_root: Path, sshd: SSHServer) -> Path:  # noqa: F811
    store = dm
    store.add("gen", "generic", {"EnginePort": 2376, "SSHKey": str(sshd.client_key)}, ip="127.0.0.1",
              ssh_user="root", ssh_port=sshd.port, ssh_key=sshd.client_key.read_bytes())
    assert run("ssh", "gen", "true").code == 0  # first contact pins the host key
    return store_root


def machine_argv(*words: str) -> list[str]:
    return [sys.executable, "-m", "machine", *words]


def test_split_reads_words_as_ssh_does() -> None:
    w = split(["-L", "8080:localhost:80", "-N", "-o", "ServerAliveInterval=5"])
    assert (w.options, w.command, w.tty) == (["-L", "8080:localhost:80", "-N", "-o", "ServerAliveInterval=5"], [], None)
    w = split(["-tNL8080:a:80", "--", "ls", "-la"])
    assert (w.options, w.command, w.tty) == (["-N", "-L", "8080:a:80"], ["ls", "-la"], True)
    w = split(["ls", "-lah", "/", "--", "x"])
    assert (w.options, w.command) == ([], ["ls", "-lah", "/", "--", "x"])
    assert split(["-T", "tty"]).tty is False
    assert split(["top"]).wants_tty(True) and not split(["top"]).wants_tty(False) and not split([]).wants_tty(True)
    with pytest.raises(UsageError, match="-L needs an argument"):
        split(["-L"])
    with pytest.raises(UsageError, match="Unknown ssh option -Z"):
        split(["-Z", "ls"])


def test_double_dash_ends_our_options_and_exit_status_is_ours(gen: Path, capfd: pytest.CaptureFixture) -> None:
    capfd.readouterr()
    assert run("ssh", "gen", "--", "ls", "-d", "/").code == 0
    assert capfd.readouterr().out == "/\n"
    assert run("ssh", "gen", "--", "sh", "-c", "'exit 7'").code == 7
    assert run("ssh", "--native", "gen", "--", "sh", "-c", "exit 9").code == 9
    res = run("ssh", "--native", "gen", "-L", "1:a:2", "true")
    assert res.code == 2 and "does not take ssh options (-L 1:a:2)" in res.err


def _in_pty(argv: list[str], timeout: float = 30) -> tuple[int, str]:
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(10), out.decode(errors="replace")


def test_tty_from_a_terminal_by_default_and_with_t(gen: Path) -> None:
    code, out = _in_pty(machine_argv("ssh", "gen", "tty"))
    assert code == 0 and "/dev/pts/" in out, out
    code, out = _in_pty(machine_argv("ssh", "gen", "-T", "tty"))
    assert code == 1 and "not a tty" in out, out
    code, out = _in_pty(machine_argv("ssh", "-T", "gen", "tty"))
    assert code == 1 and "not a tty" in out, out
    # no terminal on stdin: no TTY unless -t (forced, as ssh -tt would need; ssh -t only warns)
    res = subprocess.run(machine_argv("ssh", "gen", "tty"), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 1 and "not a tty" in res.stdout, res


def _serve_once(port: int, payload: bytes) -> threading.Thread:
    srv = socket.create_server(("127.0.0.1", port))
    srv.settimeout(30)

    def answer() -> None:
        with srv:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(payload)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    return t


def test_local_forward_passes_through_to_the_system_ssh(gen: Path) -> None:
    target, local = free_port(), free_port()
    server = _serve_once(target, b"through the tunnel\n")
    proc = subprocess.Popen(machine_argv("ssh", "gen", "-N", "-L", f"127.0.0.1:{local}:127.0.0.1:{target}"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        got = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not got:
            try:
                with socket.create_connection(("127.0.0.1", local), timeout=5) as s:
                    got = s.recv(100)
            except OSError:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.2)
        assert got == b"through the tunnel\n"
    finally:
        proc.terminate()
        proc.wait(10)
        server.join(5)


@pytest.fixture
def two(gen: Path, dm: DockerMachineStore, sshd: SSHServer) -> Path:  # noqa: F811
    """A second machine on the same test sshd: m1:/a -> m2:/b exercises two sessions."""
    dm.add("gen2", "generic", {"EnginePort": 2376, "SSHKey": str(sshd.client_key)},
                                ip="127.0.0.1", ssh_user="root", ssh_port=sshd.port,
                                ssh_key=sshd.client_key.read_bytes())
    assert run("ssh", "gen2", "true").code == 0
    return gen


def test_scp_between_two_machines(two: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.sh").write_text("#!/bin/sh\n")
    (src / "sub" / "b.sh").chmod(0o755)
    res = run("scp", f"gen:{src / 'a.txt'}", f"gen2:{tmp_path / 'copied.txt'}")
    assert res.code == 0 and "Copied 1 file(s)" in res.err, res
    assert (tmp_path / "copied.txt").read_text() == "alpha"
    res = run("scp", f"gen:{src}", f"gen2:{tmp_path / 'tree'}")
    assert res.code == 2 and "is a directory on the source machine" in res.err and "-r" in res.err
    res = run("scp", "-r", f"gen:{src}", f"gen2:{tmp_path / 'tree'}")
    assert res.code == 0 and "Copied 2 file(s)" in res.err, res
    assert (tmp_path / "tree" / "sub" / "b.sh").read_text() == "#!/bin/sh\n"
    assert (tmp_path / "tree" / "sub" / "b.sh").stat().st_mode & 0o777 == 0o755
    res = run("scp", "-d", f"gen:{src}", f"gen2:{tmp_path}")
    assert res.code == 2 and "-d copies between this host and one machine" in res.err


@pytest.mark.skipif(not shutil.which("rsync"), reason="scp -d needs rsync (here it is also the 'guest')")
def test_scp_delta_uses_rsync_with_the_pinned_key(gen: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_text("one")
    res = run("scp", "-d", "-r", f"{src}/", f"gen:{tmp_path / 'dst'}")  # rsync's rules: "src/" = its contents
    assert res.code == 0, res
    assert (tmp_path / "dst" / "d" / "f.txt").read_text() == "one"
    (src / "d" / "f.txt").write_text("two")
    # rsync's quick check compares size and mtime (1 s): a same-size edit within the second looks unchanged
    mtime = (tmp_path / "dst" / "d" / "f.txt").stat().st_mtime
    os.utime(src / "d" / "f.txt", (mtime + 5, mtime + 5))
    res = run("scp", "-d", "-r", f"{src}/", f"gen:{tmp_path / 'dst'}")
    assert res.code == 0 and (tmp_path / "dst" / "d" / "f.txt").read_text() == "two", res
    res = run("scp", "-d", f"gen:{tmp_path / 'dst' / 'd' / 'f.txt'}", str(tmp_path / "back.txt"))
    assert res.code == 0 and (tmp_path / "back.txt").read_text() == "two", res
    assert run("scp", "-d", f"gen:{tmp_path / 'missing'}", str(tmp_path / "x")).code == 1
