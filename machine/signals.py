"""Signals: SIGTERM (and SIGHUP) interrupt a command exactly as Ctrl-C does, so a create being stopped by
`kill`, a closing terminal or a service manager rolls back instead of leaving a half-made machine; and short
critical sections (an atomic write, the undo of a create) finish before a signal takes effect.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: handled like Ctrl-C (every `except KeyboardInterrupt` undo path applies)."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


def _other_signals() -> list[signal.Signals]:
    return [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]


def install() -> None:
    """Make SIGTERM/SIGHUP raise Terminated and SIGINT raise KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in _other_signals():
        signal.signal(sig, _terminate)


def exit_code(error: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block is done, then act on the first one that came (raise it).
    A no-op outside the main thread, where Python delivers no signals anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, FrameType | None]] = []
    sigs = [signal.SIGINT, *_other_signals()]
    previous = {s: signal.getsignal(s) for s in sigs}

    def remember(signum: int, frame: FrameType | None) -> None:
        pending.append((signum, frame))

    for s in sigs:
        signal.signal(s, remember)
    try:
        yield
    finally:
        for s in sigs:
            signal.signal(s, previous[s])
        if pending:
            signum, frame = pending[0]
            handler = previous[signal.Signals(signum)]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL and signum != signal.SIGINT:
                raise Terminated(signal.Signals(signum).name)
            elif handler == signal.SIG_DFL:
                raise KeyboardInterrupt
