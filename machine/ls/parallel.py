"""Asking many machines at once (ls): one daemon thread per machine, a shared deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from machine.errors import TimeoutError_


def query_many(names: list[str], fn: Callable[[str], Any], timeout: float) -> dict[str, Any]:
    """Run fn(name) for every machine in parallel. A machine that takes longer than `timeout`
    gets a TimeoutError_ as its result; one that fails gets its exception. The total wait is
    bounded by `timeout`, not by the sum. The workers are daemon threads, so a query that hangs
    does not keep the process alive after the command is done."""
    results: dict[str, Any] = {}
    pending = set(names)
    finished = threading.Condition()

    def work(name: str) -> None:
        try:
            value: Any = fn(name)
        except Exception as e:  # reported per machine in the ERRORS column
            value = e
        with finished:
            if name in pending:
                results[name] = value
                pending.discard(name)
                finished.notify_all()

    for name in names:
        threading.Thread(target=work, args=(name,), name=f"query-{name}", daemon=True).start()
    deadline = time.monotonic() + timeout
    with finished:
        while pending and (left := deadline - time.monotonic()) > 0:
            finished.wait(left)
        for name in pending:
            results[name] = TimeoutError_(f"timed out after {timeout:g} s", "Raise -t/--timeout.")
        pending.clear()
    return results
