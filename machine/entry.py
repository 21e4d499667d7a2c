"""The `machine` program's entry point. Signal handlers go in before anything else is imported: a Ctrl-C or
SIGTERM while click, the drivers or paramiko load is remembered, then ends the command with "Interrupted."
and exit 130/143, never a KeyboardInterrupt traceback. (The interpreter's own start-up, before this module
runs, is outside our reach.) Nothing else is imported before the read-only commands' fast path
(machine.fastpath) has had its chance: they must start about as fast as the interpreter."""

try:  # the C module `signal` wraps (always loaded): `signal` itself would build its enums first
    import _signal
except ImportError:  # pragma: no cover - other interpreters
    import signal as _signal

_early: list[int] = []


def _remember(signum, frame):  # noqa: ANN001, ANN202 - kept free of imports on purpose
    _early.append(signum)


for _name in ("SIGINT", "SIGTERM", "SIGHUP"):
    if hasattr(_signal, _name):
        _signal.signal(getattr(_signal, _name), _remember)

import sys  # noqa: E402 - after the handlers, on purpose


def _interrupt_in(error: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (or signals.Terminated) that caused `error`, following its causes and contexts."""
    seen: set[int] = set()
    cur: BaseException | None = error
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _interrupted(e: KeyboardInterrupt) -> int:
    try:
        sys.stderr.write("Interrupted.\n")
        sys.stderr.flush()
    except (OSError, ValueError, KeyboardInterrupt):
        pass
    return 143 if type(e).__name__ == "Terminated" else 130


def main(argv: list[str] | None = None) -> None:
    code: int | str | None = 0
    try:
        from machine import signals

        signals.install()  # from here on a signal raises KeyboardInterrupt (or signals.Terminated)
        if _early:
            raise signals.Terminated() if _early[0] != _signal.SIGINT else KeyboardInterrupt()
        from machine import fastpath

        if not fastpath.run(sys.argv[1:] if argv is None else argv):  # env, url, ls -q...: answered without click
            from machine import cli

            cli.main(argv)
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt as e:
        code = _interrupted(e)
    except Exception as e:
        # a signal that lands while Python runs a class's __set_name__ (e.g. platform.py during an import) is
        # wrapped: "RuntimeError: Error calling __set_name__ ..." caused by our KeyboardInterrupt (Python 3.11)
        interrupt = _interrupt_in(e)
        if interrupt is None:
            raise
        code = _interrupted(interrupt)
    finally:
        # the command is done: a late signal must not print a traceback while the interpreter exits
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(_signal, name):
                _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    sys.exit(code)
