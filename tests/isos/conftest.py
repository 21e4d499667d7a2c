"""pytest setup for the machine OS (isos/) tests: the `vm` marker and VM fixtures (helpers in mos_helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mos_helpers import VM, _missing, image_dir


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: needs real VMs (qemu/libvirt) and the built machine OS image")


@pytest.fixture(scope="session")
def image() -> Path:
    why = _missing()
    if why:
        pytest.skip(why)
    return image_dir().resolve()


@pytest.fixture(scope="session")
def manifest(image) -> dict:
    return json.loads((image / "manifest.json").read_text())


@pytest.fixture
def vms(tmp_path):
    """Factory for VMs; every qemu is killed at teardown."""
    made: list[VM] = []

    def factory(*args, **kw) -> VM:
        vm = VM(*args, **kw)
        made.append(vm)
        return vm

    yield factory
    for vm in made:
        vm.kill()
