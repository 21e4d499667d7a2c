"""Session fixture `installed`: the wheel of this checkout in a fresh venv outside it (tests/install/installhelpers.py).
The venv is world-readable, so a non-root user can run it too."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from installhelpers import Installed, install


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    if sys.platform == "win32":
        pytest.skip("the install tests use a POSIX venv layout")
    top = Path(tempfile.mkdtemp(prefix="machine-install-"))
    os.chmod(top, 0o755)
    try:
        yield install(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)
