"""Shared fixtures: an isolated store and docker config per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Network rule: test traffic goes only to 127.0.0.0/8. A machine's default (--DRIVER-restrict auto) gives the guest
# outside networks, as native Linux has; every machine the test session creates (in this process, in xdist workers
# or in the `machine` processes it starts, which inherit the environment) is cut off instead, whatever the user's
# shell says. A test that needs an unrestricted guest for a check whose traffic stays on 127.0.0.1 passes
# --DRIVER-restrict off or drops the variable from its subprocess environment.
SESSION_RESTRICT = {"QEMU_RESTRICT": "on", "LIBVIRT_RESTRICT": "on"}
os.environ.update(SESSION_RESTRICT)

# the shim guest of the provisioner tests (fixtures `shim_sshd`, `guest`); how the whole suite runs on 2 cores
pytest_plugins = ["provision_guest", "parallel_lanes"]


@pytest.fixture
def store_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "store"
    monkeypatch.setenv("MACHINE_STORAGE_PATH", str(root))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    return root
