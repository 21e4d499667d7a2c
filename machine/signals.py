"""Signals: SIGTERM (and SIGHUP) interrupt a command exactly as Ctrl-C does, so a create being stopped by
`kill`, a closing terminal or a service manager rolls back instead of leaving a half-made machine; and short
critical sections (an atomic write, the undo of a create) finish before a signal takes effect.

Imported by every command before it runs (machine.entry), so it loads nothing but the interpreter's own `_signal`:
threading and the `signal` module's enums are imported only where they are needed.
"""

from __future__ import annotations

try:  # the C module `signal` wraps: the same functions and numbers, without building its enums at startup
    import _signal as _sig
except ImportError:  # pragma: no cover - other interpreters
    import signal as _sig

TYPE_CHECKING = False  # typing is not loaded on the read-only commands' path
if TYPE_CHECKING:
    from types import FrameType, TracebackType

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: handled like Ctrl-C (every `except KeyboardInterrupt` undo path applies)."""


def _name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(_name(signum))


def _other_signals() -> list[int]:
    return [s for s in (getattr(_sig, "SIGTERM", None), getattr(_sig, "SIGHUP", None)) if s is not None]


def install() -> None:
    """Make SIGTERM/SIGHUP raise Terminated and SIGINT raise KeyboardInterrupt (main thread only)."""
    try:
        _sig.signal(_sig.SIGINT, _sig.default_int_handler)
    except ValueError:  # not the main thread (of the main interpreter): Python delivers no signals here
        return
    for sig in _other_signals():
        _sig.signal(sig, _terminate)


def exit_code(error: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED


class deferred:  # noqa: N801 - used as `with signals.deferred():`, like the function it was
    """Hold SIGINT/SIGTERM/SIGHUP until the block is done, then act on the first one that came (raise it).
    A no-op outside the main thread, where Python delivers no signals anyway."""

    def __enter__(self) -> None:
        import threading

        self._active = threading.current_thread() is threading.main_thread()
        if not self._active:
            return
        self._pending: list[tuple[int, FrameType | None]] = []
        self._sigs = [_sig.SIGINT, *_other_signals()]
        self._previous = {s: _sig.getsignal(s) for s in self._sigs}
        for s in self._sigs:
            _sig.signal(s, self._remember)

    def _remember(self, signum: int, frame: FrameType | None) -> None:
        self._pending.append((signum, frame))

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if not self._active:
            return
        for s in self._sigs:
            _sig.signal(s, self._previous[s])
        if self._pending:
            signum, frame = self._pending[0]
            handler = self._previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == _sig.SIG_DFL and signum != _sig.SIGINT:
                raise Terminated(_name(signum))
            elif handler == _sig.SIG_DFL:
                raise KeyboardInterrupt
