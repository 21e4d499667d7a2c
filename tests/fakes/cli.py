"""Run the real entry point `machine.cli.main` in-process under click's CliRunner isolation, keeping
the exit code, stdout, stderr and any exception that escaped (which would be a traceback)."""

from __future__ import annotations

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
