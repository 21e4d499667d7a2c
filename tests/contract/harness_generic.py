"""Contract harness for the `generic` driver, against a real host the test makes on 127.0.0.1: an OpenSSH
sshd (as tests/test_ssh.py starts it: temp host key, a client key it accepts) on a free port.

generic drives no hypervisor, so there is no fake: its state is a TCP dial to the host's SSH port, and
the host is up for the whole test, so it is RUNNING before `create`, after it and after `remove`
(its `features.always_running`, as for `none`). `create` only records the host and copies the key; `remove` forgets it
and leaves the host alone; `start` and `stop` (also with force) refuse with a hint, because the host's
power is not machine's (`features.power` False). The driver needs no local tool, so
hiding PATH must leave it usable (`needs_tool` False) and `check_available` is always ok.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import Harness, context
from machine.drivers.generic import GenericDriver

from machine.driver import option_values
from tests.test_ssh import SSHD, start_sshd, stop_sshd


@contextmanager
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GenericDriver]:
    server = start_sshd(tmp_path / "host-sshd")
    try:
        options = option_values(GenericDriver, {"ip_address": "127.0.0.1", "ssh_port": server.port,
                                                "ssh_key": str(server.client_key)}, environ={})
        yield GenericDriver(context(tmp_path, options=options, seed=False))
    finally:
        stop_sshd(server)


def skip_reason() -> str | None:
    if not os.path.exists(SSHD):
        return f"needs OpenSSH's sshd at {SSHD} (apt install openssh-server)"
    if os.geteuid() != 0:
        return "needs root to run sshd with its privilege separation directory"
    return None


HARNESSES = [
    Harness(id="generic", driver_cls=GenericDriver, make=make, skip_reason=skip_reason, created_state="running",
            needs_tool=False, available_with_fake=True),
]
