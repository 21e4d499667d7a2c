"""The one module that starts subprocesses. Everything else calls `run` or `spawn`.

Commands are argument lists (never a shell string). With debug on, each command and its output
are logged, with secrets masked.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from machine.errors import DriverError, HostNotUsable
from machine.pids import pid_alive

log = logging.getLogger("machine.process")


@dataclass(frozen=True)
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return text


def which(program: str, extra_dirs: Sequence[Path | str] = ()) -> str | None:
    """Find `program` on PATH, then in `extra_dirs` (e.g. Windows install folders)."""
    found = shutil.which(program)
    if found:
        return found
    for d in extra_dirs:
        for name in (program, program + ".exe"):
            candidate = Path(d) / name
            if candidate.is_file():
                return str(candidate)
    return None


def run(args: Sequence[str | os.PathLike[str]], *, timeout: float | None = 60, env: Mapping[str, str] | None = None,
        input: str | bytes | None = None, check: bool = False, secrets: Sequence[str] = (),
        cwd: Path | None = None, what: str = "") -> Result:
    """Run a command to completion and capture its output (text)."""
    argv = [str(a) for a in args]
    full_env = {**os.environ, **env} if env else None
    log.debug("run: %s", mask(" ".join(argv), secrets))
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=full_env, cwd=cwd,
                              input=input.encode() if isinstance(input, str) else input)
    except FileNotFoundError:
        raise HostNotUsable(f"{argv[0]} not found", f"Install {Path(argv[0]).name} or put it on PATH.") from None
    except subprocess.TimeoutExpired:
        raise DriverError(f"{what or Path(argv[0]).name} did not finish within {timeout} s",
                          "Retry; with -D the command is shown.") from None
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    if out:
        log.debug("stdout: %s", mask(out.rstrip(), secrets))
    if err:
        log.debug("stderr: %s", mask(err.rstrip(), secrets))
    result = Result(argv, proc.returncode, out, err)
    if check and not result.ok:
        raise DriverError(f"{what or Path(argv[0]).name} failed (exit {proc.returncode}): "
                          f"{mask(err.strip() or out.strip(), secrets)[-800:]}",
                          "Run again with -D to see the command and its output.")
    return result


def spawn(args: Sequence[str | os.PathLike[str]], *, log_file: Path | None = None,
          env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start a long-running process detached from this one (its own session / process group);
    stdout and stderr go to `log_file`. Returns its pid. The caller does not wait for it."""
    argv = [str(a) for a in args]
    log.debug("spawn: %s", " ".join(argv))
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    kwargs: dict = {}
    if sys.platform == "win32":  # pragma: no cover
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
    else:
        kwargs["start_new_session"] = True
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env} if env else None, cwd=cwd, close_fds=True, **kwargs)
    except FileNotFoundError:
        raise HostNotUsable(f"{argv[0]} not found", f"Install {Path(argv[0]).name} or put it on PATH.") from None
    finally:
        if log_file:
            out.close()  # type: ignore[union-attr]
    return proc.pid


def exec_interactive(args: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None) -> int:
    """Run a command attached to this terminal (e.g. docker, ssh) and return its exit code."""
    argv = [str(a) for a in args]
    log.debug("exec: %s", " ".join(argv))
    try:
        return subprocess.call(argv, env={**os.environ, **env} if env else None)
    except FileNotFoundError:
        raise HostNotUsable(f"{argv[0]} not found", f"Install {Path(argv[0]).name} or put it on PATH.") from None


# -- processes we started (qemu, switches): alive? kill and reap ------------------------------


def kill_pid(pid: int) -> None:
    """Kill `pid` at once (SIGKILL; TerminateProcess on Windows) and reap it if it is our child."""
    if pid <= 0:
        return
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows only
            import signal

            os.kill(pid, signal.SIGTERM)  # TerminateProcess
        else:
            import signal

            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        return
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.02)


def terminate_pid(pid: int, grace: float = 3.0) -> None:
    """Ask `pid` to exit (SIGTERM; on Windows TerminateProcess at once), killing it when it is still there after
    `grace` seconds; reaps it if it is our child."""
    if pid <= 0 or not pid_alive(pid):
        return
    if sys.platform != "win32":
        import signal

        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError, OSError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
    if pid_alive(pid):
        kill_pid(pid)
