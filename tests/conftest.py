"""Shared fixtures: an isolated store and docker config per test."""

from __future__ import annotations

from pathlib import Path

import pytest

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
