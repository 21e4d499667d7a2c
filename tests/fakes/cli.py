"""Run the real entry point `machine.cli.main` in-process under click's CliRunner isolation, keeping
the exit code, stdout, stderr and any exception that escaped (which would be a traceback).

With MACHINE_TEST_COMMAND set (the path of an installed `machine`, see tests/install), each call runs that
command as a subprocess instead, outside the checkout: the same CLI tests then check the installed package."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from click.testing import CliRunner

from machine.cli import main


@dataclass
class CliResult:
    code: int | None
    out: str
    err: str
    crash: BaseException | None = None

    @property
    def output(self) -> str:
        return self.out + self.err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code!r}, out={self.out!r}, err={self.err!r}, crash={self.crash!r})"


def run(*argv: str, env: Mapping[str, str | None] | None = None, input: str | None = None) -> CliResult:
    if os.environ.get("MACHINE_TEST_COMMAND"):
        return run_installed(os.environ["MACHINE_TEST_COMMAND"], *argv, env=env, input=input)
    runner = CliRunner()
    code: int | None = None
    crash: BaseException | None = None
    with runner.isolation(input=input, env=env) as (out, err, _mixed):
        try:
            main(list(argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception as e:  # noqa: BLE001 - an escaped exception is what the tests look for
            crash = e
    return CliResult(code, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"), crash)


def run_installed(command: str, *argv: str, env: Mapping[str, str | None] | None = None,
                  input: str | None = None) -> CliResult:
    """`command` (an installed `machine`) as a subprocess, from outside the checkout, without PYTHONPATH."""
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MACHINE_TEST_COMMAND")}
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    cwd = os.path.dirname(os.path.dirname(command))  # the venv: nothing of the checkout is importable from there
    proc = subprocess.run([command, *argv], capture_output=True, text=True, input=input, env=full, cwd=cwd,
                          timeout=120)
    crashed = "Traceback (most recent call last)" in proc.stderr or proc.returncode < 0
    crash = RuntimeError(proc.stderr) if crashed else None
    return CliResult(proc.returncode, proc.stdout, proc.stderr, crash)
