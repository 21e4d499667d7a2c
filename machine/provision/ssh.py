"""SSH to machines with paramiko: key auth with the machine's key, host-key pinning, commands and SFTP.

`connect()` waits for the `SSH-` banner first (a forwarded port accepts TCP before the guest's sshd
listens), then retries within one bounded total timeout. The guest's host key is pinned in
`cfg.ssh["host_key"]` ("type base64"): a different key is refused with both fingerprints named; a
machine without a pin learns its key on first contact (`Session.seen_host_key`) and the caller saves it.

With -D every remote command and its output are logged with secrets (private keys, given strings) masked.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import posixpath
import re
import shlex
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from machine import waiting
from machine.errors import SSHError, TimeoutError_
from machine.process import Result, mask  # a remote command's result: args is [the command line]

log = logging.getLogger("machine.provision.ssh")

_PRIVATE_KEY_RE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.S)


def fingerprint(public_key: str) -> str:
    """OpenSSH-style SHA256 fingerprint of "type base64 [comment]"."""
    parts = public_key.split()
    if len(parts) < 2:
        return "(none)"
    try:
        blob = base64.b64decode(parts[1])
    except ValueError:
        return "(invalid key)"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def same_key(a: str, b: str) -> bool:
    """Equal "type base64" keys (comments ignored)."""
    return a.split()[:2] == b.split()[:2]


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """Text safe for debug logs: private key blocks and the given secrets masked."""
    return mask(_PRIVATE_KEY_RE.sub("****", text), secrets)


@dataclass(frozen=True)
class Target:
    """Where and how to log in."""

    host: str
    port: int
    user: str
    key_file: Path
    host_key: str | None = None  # the pin; None: learn on first contact
    name: str = ""  # the machine's name, for messages

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


class HostKeyMismatch(SSHError):
    """The machine answered with a host key other than the pinned one."""


class _PinPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko when the host has no known key. With a pin (which paramiko checks itself,
    raising BadHostKeyException) this should not happen; refuse then. Without a pin, record the key:
    the caller stores it (trust on first use)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.seen: str | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        seen = f"{key.get_name()} {key.get_base64()}"
        if self.target.host_key and not same_key(self.target.host_key, seen):
            raise _mismatch(self.target, seen)
        self.seen = seen


def _mismatch(target: Target, seen: str) -> HostKeyMismatch:
    who = f"{target.name!r} at {target.host}:{target.port}" if target.name else f"{target.host}:{target.port}"
    return HostKeyMismatch(
        f"SSH host key of {who} does not match the pinned key: expected {fingerprint(target.host_key or '')}, "
        f"got {fingerprint(seen)}",
        "Someone else may answer at that address, or the machine was rebuilt. The key was NOT accepted. "
        "If the change is expected, remove the machine and create it again.",
    )


def load_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(str(path))
    except FileNotFoundError:
        raise SSHError(f"SSH key {path} not found", "The machine directory is incomplete; recreate the machine.")\
            from None
    except (paramiko.SSHException, ValueError, OSError) as e:
        raise SSHError(f"Cannot read SSH key {path}: {e}", "Use an unencrypted OpenSSH or PEM private key.")\
            from None


def connect(target: Target, *, timeout: float = 120.0, auth_timeout: float | None = None,
            secrets: Sequence[str] = ()) -> Session:
    """Wait for the banner, connect and authenticate, retrying until `timeout` seconds have passed in
    total. Authentication failures are retried for `auth_timeout` (default: the whole timeout;
    cloud-init may write authorized_keys after sshd starts). A host-key mismatch is never retried."""
    deadline = time.monotonic() + timeout
    auth_deadline = time.monotonic() + (timeout if auth_timeout is None else auth_timeout)
    pkey = load_key(target.key_file)
    hint = f"Check that sshd runs on {target.host}:{target.port} and accepts the machine's key."
    # the banner gets up to 30 s once connected: OpenSSH 10's sshd execs sshd-session per connection, which took
    # up to 28 s under TCG on a loaded host; dropping the connection sooner and retrying piles up unfinished ones
    waiting.until(lambda: waiting.ssh_banner(target.host, target.port, timeout=min(5.0, timeout),
                                             banner_wait=min(30.0, timeout)),
                  timeout=timeout, what=f"the SSH banner at {target.host}:{target.port}", interval=0.3, hint=hint)
    last: Exception | None = None
    while True:
        client = paramiko.SSHClient()
        policy = _PinPolicy(target)
        client.set_missing_host_key_policy(policy)
        if target.host_key:
            parts = target.host_key.split()
            try:
                key = paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
            except (IndexError, ValueError, paramiko.SSHException) as e:
                raise SSHError(f"The pinned host key of {target.name or target.host} is invalid: {e}",
                               "The machine config is damaged; recreate the machine.") from None
            known = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
            client.get_host_keys().add(known, parts[0], key)
        left = max(1.0, deadline - time.monotonic())
        try:
            client.connect(target.host, target.port, username=target.user, pkey=pkey, timeout=min(15.0, left),
                           banner_timeout=min(30.0, left), auth_timeout=min(30.0, left), allow_agent=False,
                           look_for_keys=False)
            log.debug("ssh %s: connected", target)
            return Session(client, target, policy.seen or target.host_key, list(secrets))
        except paramiko.BadHostKeyException as e:
            client.close()
            raise _mismatch(target, f"{e.key.get_name()} {e.key.get_base64()}") from None
        except HostKeyMismatch:
            client.close()
            raise
        except paramiko.AuthenticationException as e:
            client.close()
            last = e
            if time.monotonic() >= auth_deadline or time.monotonic() >= deadline:
                raise SSHError(f"SSH authentication as {target.user!r} at {target.host}:{target.port} failed: {e}",
                               "The machine does not accept its key; check the user and the authorized keys.")\
                    from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            client.close()
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError_(f"Could not connect over SSH to {target} within {timeout:.0f} s: {last}", hint)
        log.debug("ssh %s: retrying after %s", target, last)
        time.sleep(1.0)


class Session:
    """One SSH connection. Commands run through `sh -c`; with a non-root user, through `sudo -n`."""

    def __init__(self, client: paramiko.SSHClient, target: Target, seen_host_key: str | None,
                 secrets: list[str]) -> None:
        self.client = client
        self.target = target
        self.seen_host_key = seen_host_key
        self.secrets = secrets
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        self.client.close()

    @property
    def is_root(self) -> bool:
        return self.target.user == "root"

    def wrap(self, command: str, sudo: bool = True) -> str:
        if sudo and not self.is_root:
            return "sudo -n sh -c " + shlex.quote(command)
        return command

    def run(self, command: str, *, sudo: bool = True, check: bool = True, input: bytes | str | None = None,
            timeout: float = 900.0, what: str = "", secrets: Sequence[str] = ()) -> Result:
        """Run `command` (a shell string) and capture its output. With check, a non-zero exit raises a
        MachineError naming the command (masked) and its output's tail."""
        hide = [*self.secrets, *secrets]
        full = self.wrap(command, sudo)
        log.debug("ssh %s: run: %s", self.target, scrub(full, hide))
        try:
            stdin, stdout, stderr = self.client.exec_command(full, timeout=timeout)
            if input is not None:
                stdin.write(input.encode() if isinstance(input, str) else input)
            stdin.channel.shutdown_write()
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            rc = stdout.channel.recv_exit_status()
        except TimeoutError:
            raise TimeoutError_(f"{what or 'Remote command'} on {self.target.name or self.target.host} did not "
                                f"finish within {timeout:.0f} s", "Run again with -D to see the command.") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise SSHError(f"SSH connection to {self.target} failed: {e}", "Check that the machine runs.") from None
        if out:
            log.debug("ssh %s: stdout: %s", self.target, scrub(out.rstrip(), hide))
        if err:
            log.debug("ssh %s: stderr: %s", self.target, scrub(err.rstrip(), hide))
        result = Result([command], rc, out, err)
        if check and not result.ok:
            tail = scrub((err.strip() or out.strip()), hide)[-800:]
            raise SSHError(f"{what or 'Remote command'} failed on {self.target.name or self.target.host} "
                           f"(exit {rc}): {tail}", "Run again with -D to see the commands and their output.")
        return result

    # -- files ---------------------------------------------------------------------------
    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self.client.open_sftp()
            except (paramiko.SSHException, OSError) as e:
                raise SSHError(f"SFTP to {self.target} failed: {e}",
                               "The machine's sshd must offer the sftp subsystem.") from None
        return self._sftp

    def put(self, data: bytes | str, remote: str, mode: int = 0o644) -> None:
        """Write `data` to `remote` atomically (temp file + rename) with `mode`; through sudo when the
        user is not root (uploaded to /tmp first, then moved)."""
        payload = data.encode() if isinstance(data, str) else data
        log.debug("ssh %s: upload %d bytes to %s (mode %o)", self.target, len(payload), remote, mode)
        parent = posixpath.dirname(remote) or "/"
        if self.is_root:
            tmp = f"{parent}/.machine-upload-{uuid.uuid4().hex[:12]}"
            self.run(f"mkdir -p {shlex.quote(parent)}", what=f"Creating {parent}")
            try:
                self._write(tmp, payload, mode)
                self.sftp.posix_rename(tmp, remote)
            except OSError as e:
                self.run(f"rm -f {shlex.quote(tmp)}", check=False)
                raise SSHError(f"Uploading {remote} to {self.target} failed: {e}",
                               "Check free space and permissions on the machine.") from None
            return
        tmp = f"/tmp/.machine-upload-{uuid.uuid4().hex[:12]}"
        try:
            self._write(tmp, payload, 0o600)
        except OSError as e:
            raise SSHError(f"Uploading {remote} to {self.target} failed: {e}",
                           "Check free space on the machine's /tmp.") from None
        q = shlex.quote
        # restorecon: a file moved from /tmp keeps its SELinux label, which dockerd may not be allowed to read
        self.run(f"mkdir -p {q(parent)} && chmod {mode:o} {q(tmp)} && chown root:root {q(tmp)} && mv -f {q(tmp)} "
                 f"{q(remote)} && {{ command -v restorecon >/dev/null 2>&1 && restorecon {q(remote)} || true; }}",
                 what=f"Installing {remote}")

    def _write(self, path: str, payload: bytes, mode: int) -> None:
        with self.sftp.open(path, "wb") as f:
            f.set_pipelined(True)
            f.write(payload)
        self.sftp.chmod(path, mode)

    def get(self, remote: str) -> bytes:
        buf = io.BytesIO()
        try:
            self.sftp.getfo(remote, buf)
        except OSError as e:
            raise SSHError(f"Reading {remote} from {self.target} failed: {e}", "Check the path.") from None
        return buf.getvalue()

    def exists(self, remote: str) -> bool:
        return self.run(f"test -e {shlex.quote(remote)}", check=False, sudo=True).ok
