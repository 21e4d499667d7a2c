"""The wheel, installed into a fresh venv outside the checkout: it carries the whole machine OS recipe and the
templates, its `machine` runs (the CLI tests of tests/test_cli_none.py run again against it), and an installed user
is told how to get the machine OS image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from installhelpers import CHECKOUT, Installed


def _package_files(folder: str, prefix: str) -> set[str]:
    root = CHECKOUT / folder
    return {f"{prefix}/{p.relative_to(root).as_posix()}" for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc" and p.name != ".keep"}


def test_wheel_carries_the_recipe_and_the_templates(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    recipe = _package_files("isos", "machine/isos")
    assert {"machine/isos/build.py", "machine/isos/packages.txt", "machine/isos/initrd/init",
            "machine/isos/boot/grub.cfg", "machine/isos/rootfs/etc/inittab"} <= recipe
    assert recipe - names == set()
    assert _package_files("templates", "machine/templates") - names == set()
    # the installed recipe hashes like the checkout's: a build from either is the same build
    checkout_hash = subprocess.run([sys.executable, str(CHECKOUT / "isos" / "build.py"), "--print-hash"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    info = installed.run("os", "info", "--json")
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["recipe_hash_installed"] == checkout_hash
    assert Path(report["recipe"]).is_relative_to(installed.venv)


def test_installed_machine_is_not_the_checkout(installed: Installed) -> None:
    where = subprocess.run([str(installed.python), "-c", "import machine, machine.drivers.qemu as q; "
                            "print(machine.__file__); print(q.__file__)"],
                           capture_output=True, text=True, cwd=installed.venv, env={"PATH": os.environ["PATH"]})
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).is_relative_to(installed.venv) and not Path(line).is_relative_to(CHECKOUT), line
    version = installed.run("--version")
    assert version.returncode == 0 and version.stdout.startswith("machine, version"), version


def test_cli_tests_pass_against_the_installed_command(installed: Installed, tmp_path: Path) -> None:
    """tests/test_cli_none.py, every call through the installed `machine` (tests/fakes/cli.py)."""
    env = {**os.environ, "MACHINE_TEST_COMMAND": str(installed.machine)}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                          "tests/test_cli_none.py", "--basetemp", str(tmp_path / "t")],
                         capture_output=True, text=True, cwd=CHECKOUT, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "skipped" not in res.stdout.splitlines()[-1], res.stdout[-500:]


def test_without_an_image_create_says_how_to_get_it(installed: Installed, tmp_path: Path) -> None:
    env = {**os.environ, "MACHINE_STORAGE_PATH": str(tmp_path / "store"), "MACHINE_OS_CACHE": str(tmp_path / "u"),
           "MACHINE_OS_SYSTEM_CACHE": str(tmp_path / "sys"), "DOCKER_CONFIG": str(tmp_path / "dc")}
    env.pop("MACHINE_OS_DIR", None)
    env.pop("MACHINE_OS_URL", None)
    res = installed.run("create", "-d", "qemu", "noimage", env=env)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res
    assert "machine os build" in res.stderr and str(tmp_path / "sys") in res.stderr, res.stderr
    assert "machine os pull" in res.stderr
    assert not (tmp_path / "store" / "machines" / "noimage").exists()
    info = installed.run("os", "info", env=env)
    assert info.returncode == 0 and "Machine OS: not found" in info.stdout, info
