"""Helpers of tests/install: a wheel built from this checkout, installed into a fresh venv outside the checkout
(~30 s with pip's cache). Tests run that venv's `machine`, never the checkout's code."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
# what the wheel is built from: the package sources and their metadata (no tests, no VCS, no build leftovers)
SOURCES = ("pyproject.toml", "setup.py", "README.md", "machine", "drivers", "templates", "isos")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def machine(self) -> Path:
        return self.venv / "bin" / "machine"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str, env: dict[str, str] | None = None, user: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """The installed `machine` from the venv's folder (nothing of the checkout importable), as `user`."""
        full = {k: v for k, v in (env or os.environ).items() if k != "PYTHONPATH"}
        return subprocess.run([str(self.machine), *args], capture_output=True, text=True, env=full,
                              cwd=self.venv, timeout=timeout, user=user)


def _run(argv: list[str], **kw: object) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]
    assert res.returncode == 0, f"{argv}: {res.stdout[-2000:]}{res.stderr[-2000:]}"


def _world_usable(path: Path) -> bool:
    """Every folder above `path` lets other users through (a venv's python links to its base interpreter)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in path.resolve().parents)


def base_python() -> str:
    """An interpreter for the venv that a non-root user may run too: this one, unless it lives in a private folder
    (e.g. pyenv under /root), then the system's python3."""
    mine = Path(getattr(sys, "_base_executable", sys.executable))
    if _world_usable(mine):
        return str(mine)
    system = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return system if system and _world_usable(Path(system)) else str(mine)


def install(top: Path) -> Installed:
    """Build a wheel from the checkout's package sources and install it into a fresh venv under `top`."""
    src = top / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in SOURCES:
        p = CHECKOUT / name
        (shutil.copytree(p, src / name, ignore=ignore, symlinks=True) if p.is_dir() else shutil.copy2(p, src))
    dist = top / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(src)])
    wheel = next(dist.glob("machine-*.whl"))
    venv = top / "venv"
    _run([base_python(), "-m", "venv", str(venv)])
    # with the libvirt extra (libvirt-python builds against the system library once; pip's cache keeps the wheel)
    _run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[libvirt]"])
    shutil.rmtree(src)
    return Installed(wheel=wheel, venv=venv)
