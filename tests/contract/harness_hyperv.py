"""Contract harness for the `hyperv` driver: real pywinrm against the fake WinRM server
(tests/fakes/winrm: WS-Management shell over HTTPS with a test CA and NTLM, a fake Hyper-V host that
interprets the driver's scripts and keeps real state). With MACHINE_CONTRACT_REAL=hyperv the
driver talks to the Hyper-V host named by HYPERV_HOST (HYPERV_USER, HYPERV_PASSWORD, ...)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from harness import Harness, context, real_requested
from machine.drivers.hyperv import HypervDriver

from machine.driver import option_values

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes" / "winrm"))

from hv_pytest import fake_host, fake_iso, options_for  # noqa: E402


@contextlib.contextmanager
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HypervDriver]:
    if real_requested("hyperv"):
        opts = option_values(HypervDriver, {}, environ=dict(os.environ))
        yield HypervDriver(context(tmp_path, name="contract-hv", options=opts))
        return
    with fake_host(tmp_path, tls=True, ntlm=True) as srv:
        opts = options_for(srv, tmp_path, transport="ntlm", iso=str(fake_iso(tmp_path / "iso")))
        # check_available(option_values(cls, {}, environ={})) must find the fake host: as if the
        # user had set HYPERV_HOST, HYPERV_PORT, ... we make the fake's settings the defaults.
        monkeypatch.setattr(HypervDriver, "options",
                            tuple(replace(o, default=opts[o.key]) if opts[o.key] is not None else o
                                  for o in HypervDriver.options))
        yield HypervDriver(context(tmp_path, name="contract-hv", options=opts))


def skip_reason() -> str | None:
    if real_requested("hyperv") and not os.environ.get("HYPERV_HOST"):
        return "MACHINE_CONTRACT_REAL=hyperv needs HYPERV_HOST (and HYPERV_USER, HYPERV_PASSWORD)"
    return None


HARNESSES = [
    Harness(id="hyperv", driver_cls=HypervDriver, make=make, skip_reason=skip_reason, created_state="stopped",
            available_with_fake=True),
]
