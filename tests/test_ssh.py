"""machine.provision.ssh against a real OpenSSH sshd on 127.0.0.1 (started per test module, as root, with a temp
host key and authorized_keys). The `sshd` fixture is imported by test_generic.py and test_provision_remote.py."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from machine.errors import MachineError, TimeoutError_
from machine.provision import keys, ssh

SSHD = "/usr/sbin/sshd"

pytestmark = pytest.mark.skipif(not (os.path.exists(SSHD) and os.geteuid() == 0),
                                reason="needs OpenSSH's sshd (apt install openssh-server) and root")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SSHServer:
    port: int
    dir: Path
    host_key: str  # "ssh-ed25519 BASE64"
    client_key: Path  # private key the server accepts
    proc: subprocess.Popen

    def target(self, **kw: object) -> ssh.Target:
        args = {"host": "127.0.0.1", "port": self.port, "user": "root", "key_file": self.client_key,
                "host_key": self.host_key, "name": "t"}
        args.update(kw)
        return ssh.Target(**args)  # type: ignore[arg-type]


def start_sshd(directory: Path, extra_config: str = "") -> SSHServer:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    host = keys.new_ed25519("test-host")
    keys.write_keypair(directory / "host_ed25519", host)
    client = keys.new_ed25519("test-client")
    keys.write_keypair(directory / "client", client)
    (directory / "authorized_keys").write_text(client.public + "\n")
    port = free_port()
    conf = directory / "sshd_config"
    conf.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory}/host_ed25519\nPidFile {directory}/sshd.pid\n"
        f"AuthorizedKeysFile {directory}/authorized_keys\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        "UsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n" + extra_config)
    log = open(directory / "sshd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf), "-p", str(port)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("sshd did not start: " + (directory / "sshd.log").read_text())
    return SSHServer(port, directory, " ".join(host.public.split()[:2]), directory / "client", proc)


def stop_sshd(server: SSHServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(5)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    stop_sshd(server)


# -- tests --------------------------------------------------------------------------------------


def test_key_auth_command_output_and_exit_status(sshd: SSHServer) -> None:
    with ssh.connect(sshd.target(), timeout=20) as s:
        res = s.run("echo out; echo err >&2; exit 3", check=False)
        assert (res.stdout, res.stderr, res.returncode) == ("out\n", "err\n", 3)
        assert s.run("id -u").stdout.strip() == "0"
        assert s.run("cat", input=b"piped\n").stdout == "piped\n"
        with pytest.raises(MachineError, match=r"exit 7.*boom"):
            s.run("echo boom >&2; exit 7", what="Failing step")


def test_wrong_key_is_refused_quickly(sshd: SSHServer, tmp_path: Path) -> None:
    other = keys.new_ed25519("stranger")
    keys.write_keypair(tmp_path / "other", other)
    start = time.monotonic()
    with pytest.raises(MachineError, match="authentication"):
        ssh.connect(sshd.target(key_file=tmp_path / "other"), timeout=20, auth_timeout=0)
    assert time.monotonic() - start < 10


def test_pinned_host_key_mismatch_is_refused_naming_both_fingerprints(sshd: SSHServer) -> None:
    wrong = " ".join(keys.new_ed25519("impostor").public.split()[:2])
    with pytest.raises(ssh.HostKeyMismatch) as err:
        ssh.connect(sshd.target(host_key=wrong), timeout=20)
    assert ssh.fingerprint(wrong) in err.value.message
    assert ssh.fingerprint(sshd.host_key) in err.value.message
    assert "NOT accepted" in err.value.hint


def test_pinned_key_of_another_type_is_refused(sshd: SSHServer) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    with pytest.raises(ssh.HostKeyMismatch):
        ssh.connect(sshd.target(host_key=pub), timeout=20)


def test_first_contact_learns_the_key_only_without_a_pin(sshd: SSHServer) -> None:
    with ssh.connect(sshd.target(host_key=None), timeout=20) as s:
        assert s.seen_host_key and ssh.same_key(s.seen_host_key, sshd.host_key)
    with ssh.connect(sshd.target(), timeout=20) as s:
        assert ssh.same_key(s.seen_host_key or "", sshd.host_key)


def test_sftp_upload_is_atomic_with_mode_and_reads_back(sshd: SSHServer, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "dir" / "file.txt"
    with ssh.connect(sshd.target(), timeout=20) as s:
        s.put("hello\n", str(dest), 0o600)
        s.put(b"second\n", str(dest), 0o640)
        assert s.get(str(dest)) == b"second\n"
        assert s.exists(str(dest)) and not s.exists(str(tmp_path / "nope"))
    assert dest.read_text() == "second\n"
    assert dest.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in dest.parent.iterdir()] == ["file.txt"]  # no temp file left


def test_debug_log_masks_private_keys_and_secrets(sshd: SSHServer, caplog: pytest.LogCaptureFixture) -> None:
    pem = keys.new_ed25519("x").private
    caplog.set_level(logging.DEBUG, logger="machine.provision.ssh")
    with ssh.connect(sshd.target(), timeout=20, secrets=["hunter2"]) as s:
        s.run("echo token=hunter2")
        s.run(f"printf '%s' '{pem}' | head -c 5000", secrets=["unused"])
    text = caplog.text
    assert "echo token=****" in text and "stdout: token=****" in text
    assert "hunter2" not in text
    assert "PRIVATE KEY" not in text and "****" in text
    assert "run: echo token" in text  # commands are logged


class LateSSH:
    """A forwarded port as qemu makes it: it accepts TCP at once but closes connections until the
    'guest sshd' is up (after `delay` seconds), then forwards to the real sshd."""

    def __init__(self, backend_port: int, delay: float) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.ready_at = time.monotonic() + delay
        self.backend = backend_port
        self.refused = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if time.monotonic() < self.ready_at:
                self.refused += 1
                conn.close()
                continue
            up = socket.create_connection(("127.0.0.1", self.backend))
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_waits_for_the_banner_behind_an_early_accepting_port(sshd: SSHServer) -> None:
    late = LateSSH(sshd.port, delay=2.0)
    try:
        start = time.monotonic()
        with ssh.connect(sshd.target(port=late.port), timeout=20) as s:
            assert s.run("echo up").stdout == "up\n"
        assert time.monotonic() - start >= 1.9
        assert late.refused >= 1  # it did knock before sshd was there
    finally:
        late.close()


def test_no_banner_within_the_timeout_is_a_clear_timeout(tmp_path: Path) -> None:
    keys.write_keypair(tmp_path / "k", keys.new_ed25519("c"))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    port = silent.getsockname()[1]
    conns: list[socket.socket] = []
    threading.Thread(target=lambda: conns.append(silent.accept()[0]), daemon=True).start()
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError_, match="SSH banner"):
            ssh.connect(ssh.Target("127.0.0.1", port, "root", tmp_path / "k"), timeout=3)
        assert time.monotonic() - start < 12
    finally:
        silent.close()


def test_missing_key_file_is_a_machine_error(sshd: SSHServer, tmp_path: Path) -> None:
    with pytest.raises(MachineError, match="not found"):
        ssh.connect(sshd.target(key_file=tmp_path / "absent"), timeout=5)


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    keygen = shutil.which("ssh-keygen")
    if not keygen:
        pytest.skip("ssh-keygen not installed")
    pair = keys.new_ed25519("c")
    keys.write_keypair(tmp_path / "k", pair)
    out = subprocess.run([keygen, "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == ssh.fingerprint(pair.public)


def test_commands_go_through_sudo_for_other_users(sshd: SSHServer) -> None:
    with ssh.connect(sshd.target(), timeout=20) as s:
        assert s.wrap("a; b") == "a; b"
        other = ssh.Session(s.client, sshd.target(user="debian"), None, [])
        assert other.wrap("echo 'x'; id") == "sudo -n sh -c 'echo '\"'\"'x'\"'\"'; id'"
        assert other.wrap("id", sudo=False) == "id"
