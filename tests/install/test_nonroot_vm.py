"""One real VM through the installed `machine`, run by a non-root user (issue #13, sections 1 and 5):
create -d qemu, `docker run` of an imported image, rm. The image is obtained the documented way: root ran
`machine os build` (.ci/setup does), which lands in the system-wide cache every user's `machine` searches.
As root, the test makes the user `machine-ci` (no sudo, no kvm group); run as a non-root user, it is that user.
The same with libvirt's qemu:///session (qemu runs as the user, under the session daemon libvirt starts)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from installhelpers import Installed

from bench.rootfs import write_busybox_rootfs
from machine import process
from machine.images import machineos

pytestmark = pytest.mark.vm
USER = "machine-ci"
NAME = "nonroot-vm"
LV_NAME = "nonroot-lv"


def _skip_reason() -> str | None:
    for tool in ("qemu-system-x86_64", "qemu-img", "docker"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if os.geteuid() == 0 and not shutil.which("useradd"):
        return "useradd is missing (needed to make the non-root user)"
    shared = machineos.system_cache() / "latest"
    if not machineos.is_build(shared):
        return f"no machine OS in the system-wide cache {shared}: run `sudo machine os build` (.ci/setup does)"
    return None


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    if reason := _skip_reason():
        pytest.skip(reason)
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER)


@pytest.fixture(scope="module")
def as_user(installed: Installed, user: pwd.struct_passwd) -> Iterator:
    """Run the installed `machine` (or docker) as the non-root user, with that user's own clean environment."""
    env = {"HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name, "LANG": "C.UTF-8",
           "PATH": f"{installed.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
           "QEMU_RESTRICT": "on", "LIBVIRT_RESTRICT": "on"}  # guests cut off from outside networks (tests/conftest.py)
    as_other = user.pw_uid != os.geteuid()

    def run(*argv: str, extra: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), capture_output=True, text=True, env={**env, **(extra or {})},
                              cwd=user.pw_dir, timeout=timeout, user=user.pw_uid if as_other else None,
                              group=user.pw_gid if as_other else None, extra_groups=[] if as_other else None)

    yield run
    for name in (NAME, LV_NAME):
        run("machine", "rm", "-f", "-y", name, timeout=120)
    if as_other:  # the session libvirtd that libvirt started for the user (it would exit after 120 s idle)
        for pid in _session_daemons(user.pw_uid):
            os.kill(pid, 15)


def _session_daemons(uid: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid == uid and b"libvirtd" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _console_tail(user: pwd.struct_passwd, name: str) -> str:
    """The end of the machine's console log (a stuck guest says why there: soft lockups, mount errors)."""
    log = Path(user.pw_dir) / ".docker" / "machine" / "machines" / name / "console.log"
    try:
        return "\n--- console.log ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
    except OSError as e:
        return f"\n(no console log: {e})"


def _docker_run(as_user, user: pwd.struct_passwd, name: str) -> None:
    """`machine env`, then docker import + run of a busybox image through TLS, as the user. A hang fails after
    5 minutes with the guest's console log (not after the 15-minute default)."""
    try:
        _import_and_run(as_user, name)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{e}{_console_tail(user, name)}")


def _import_and_run(as_user, name: str) -> None:
    env = as_user("machine", "env", name)
    assert env.returncode == 0, env
    denv = {}
    for line in env.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            denv[key] = value.strip('"')
    assert denv["DOCKER_HOST"].startswith("tcp://127.0.0.1:") and denv["DOCKER_TLS_VERIFY"] == "1"
    tar_dir = Path(tempfile.mkdtemp(prefix="machine-nonroot-"))
    try:
        os.chmod(tar_dir, 0o755)
        tar = write_busybox_rootfs(tar_dir / "bb.tar", ("sh", "echo", "id"))
        os.chmod(tar, 0o644)
        imp = as_user("docker", "import", str(tar), "busybox:nonroot", extra=denv, timeout=300)
        assert imp.returncode == 0, imp.stderr
    finally:
        shutil.rmtree(tar_dir, ignore_errors=True)
    ran = as_user("docker", "run", "--rm", "busybox:nonroot", "/bin/sh", "-c", f"echo hello from {name}",
                  extra=denv, timeout=300)
    assert ran.returncode == 0 and ran.stdout.strip() == f"hello from {name}", ran


def test_nonroot_user_creates_runs_and_removes_a_qemu_vm(as_user, user: pwd.struct_passwd) -> None:
    assert user.pw_uid != 0
    info = as_user("machine", "os", "info", "--json")
    assert info.returncode == 0, info
    assert '"in_use": "' + str(machineos.system_cache()) in info.stdout, info.stdout  # found in the shared cache
    refused = as_user("machine", "os", "build")
    assert refused.returncode == 1 and "sudo" in refused.stderr and "Traceback" not in refused.stderr, refused

    created = as_user("machine", "create", "-d", "qemu", NAME)
    assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:] + _console_tail(user, NAME)
    store = Path(user.pw_dir) / ".docker" / "machine" / "machines" / NAME
    pid = int((store / "qemu.pid").read_text())
    assert os.stat(f"/proc/{pid}").st_uid == user.pw_uid  # qemu runs as the user, not root
    _docker_run(as_user, user, NAME)
    removed = as_user("machine", "rm", "-y", NAME)
    assert removed.returncode == 0, removed
    # qemu has exited: a zombie still in /proc until PID 1 reaps it (it is not ours) counts as gone
    assert not store.exists() and not process.pid_alive(pid)
    listed = as_user("machine", "ls", "-q")
    assert listed.returncode == 0 and NAME not in listed.stdout.split()


def test_nonroot_user_with_libvirt_session(as_user, user: pwd.struct_passwd) -> None:
    if not shutil.which("libvirtd") or not shutil.which("virsh"):
        pytest.skip("libvirtd is not installed")
    uri = "qemu:///session"
    created = as_user("machine", "create", "-d", "libvirt", "--libvirt-uri", uri, LV_NAME)
    assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
    domains = as_user("virsh", "-c", uri, "list", "--name")
    assert domains.returncode == 0 and any(LV_NAME in d for d in domains.stdout.split()), domains
    _docker_run(as_user, user, LV_NAME)
    removed = as_user("machine", "rm", "-y", LV_NAME)
    assert removed.returncode == 0, removed
    domains = as_user("virsh", "-c", uri, "list", "--all", "--name")
    assert not any(LV_NAME in d for d in domains.stdout.split()), domains
