"""One progress line per step: what it is doing and how long it took (on stderr)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.timings: dict[str, float] = {}

    def info(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        print(f"Warning: {text}", file=self.stream, flush=True)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        """`with progress.step("Booting VM"):` prints `Booting VM... done (3.2s)` or `... failed`."""
        start = time.monotonic()
        interactive = self.stream.isatty() and not self.quiet
        if interactive:
            print(f"{text}...", end="", file=self.stream, flush=True)
        try:
            yield
        except BaseException:
            took = time.monotonic() - start
            if interactive:
                print(f" failed ({took:.1f}s)", file=self.stream, flush=True)
            elif not self.quiet:
                print(f"{text}... failed ({took:.1f}s)", file=self.stream, flush=True)
            raise
        took = time.monotonic() - start
        self.timings[text] = took
        if interactive:
            print(f" done ({took:.1f}s)", file=self.stream, flush=True)
        elif not self.quiet:
            print(f"{text}... done ({took:.1f}s)", file=self.stream, flush=True)
