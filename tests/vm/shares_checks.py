"""What the real-VM share tests check on one machine (qemu and libvirt modules share it): a machine created with
the default home share (HOME is a temp folder) and `--share EXTRA:/extra:ro`; containers read host files under
both, write files the host sees owned by the host user; modes, symlinks, rename, delete and host-side changes
carry; a `--restart always` container sees the shares again after `machine restart`."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from machine.images.catalogue import machine_os_dir
from tests.vm.vmhelpers import docker, docker_env, machine

APPLETS = ("sh", "cat", "echo", "ls", "ln", "mv", "rm", "chmod", "stat", "sleep", "date", "mkdir", "touch")
IMAGE = "busybox:shares-test"


@contextmanager
def module_machine(tmp_path_factory: pytest.TempPathFactory, driver: str, reason: str | None,
                   ) -> Iterator[dict[str, Any]]:
    """The one machine of a test module (skipped with `reason`), in a store and docker config of its own;
    removed afterwards. Its folder is m["dir"]."""
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp(f"shares-{driver}")
    mp = pytest.MonkeyPatch()
    store = tmp / "store"
    mp.setenv("MACHINE_STORAGE_PATH", str(store))
    mp.setenv("DOCKER_CONFIG", str(tmp / "docker-config"))
    mp.delenv("DOCKER_HOST", raising=False)
    m = None
    try:
        m = make_machine(tmp, driver)
        m["dir"] = store / "machines" / m["name"]
        yield m
    finally:
        if m:
            remove(m)
        mp.undo()


def make_machine(tmp_path: Path, driver: str, extra_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Create the machine; returns what the checks need (env with HOME/store, names, folders)."""
    home = tmp_path / "home"
    (home / "proj").mkdir(parents=True)
    (home / "proj" / "hello.txt").write_text("hello from the host\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "data.txt").write_text("read-only data\n")
    env = dict(os.environ, HOME=str(home))
    env.setdefault("MACHINE_OS_DIR", str(machine_os_dir()))  # the build skip_reason checked (HOME moves below)
    name = f"sh-{uuid.uuid4().hex[:6]}"
    res = machine("create", "-d", driver, *extra_args, "--share", f"{extra}:/extra:ro", name, env=env, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    m = {"name": name, "env": env, "home": home, "extra": extra}
    m["denv"] = docker_env(name, env)
    from bench.rootfs import busybox_rootfs

    tar = tmp_path / "bb.tar"
    tar.write_bytes(busybox_rootfs(APPLETS))
    imp = docker("import", str(tar), IMAGE, env=m["denv"])
    assert imp.returncode == 0, imp.stderr
    return m


def run(m: dict[str, Any], *args: str, timeout: float = 300) -> str:
    res = docker("run", "--rm", *args, env=m["denv"], timeout=timeout)
    assert res.returncode == 0, f"docker run {args}: {res.stdout}{res.stderr}"
    return res.stdout


def check_inspect_and_ls(m: dict[str, Any]) -> None:
    view = json.loads(machine("inspect", m["name"], env=m["env"]).stdout)
    assert view["Shares"] == [
        {"HostPath": str(m["home"].resolve()), "GuestPath": str(m["home"].resolve()), "ReadOnly": False},
        {"HostPath": str(m["extra"].resolve()), "GuestPath": "/extra", "ReadOnly": True}]
    assert view["ShareErrors"] == []
    # ls gives the engines 1.5 s: on a loaded host one query may time out (a Timeout row); ask again for up to 60 s
    deadline = time.monotonic() + 60
    while True:
        ls = machine("ls", "--format", "{{.Name}} {{.State}} [{{.Error}}]", "--filter", f"name={m['name']}",
                     env=m["env"])
        if ls.stdout.strip() == f"{m['name']} Running []" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert ls.stdout.strip() == f"{m['name']} Running []", ls.stdout + ls.stderr


def check_read_write_semantics(m: dict[str, Any]) -> None:
    proj = m["home"] / "proj"
    # docker run -v "$PWD":/src from anywhere under the home folder: the same path in the machine
    assert run(m, "-v", f"{proj}:/src", IMAGE, "cat", "/src/hello.txt") == "hello from the host\n"
    assert run(m, "-v", "/extra:/e:ro", IMAGE, "cat", "/e/data.txt") == "read-only data\n"
    res = docker("run", "--rm", "-v", "/extra:/e", IMAGE, "touch", "/e/nope", env=m["denv"])
    assert res.returncode != 0 and "Read-only file system" in res.stderr, res.stderr
    assert not (m["extra"] / "nope").exists()
    # written in a container: on the host at once, owned by the host user; mode, symlink, rename, delete carry
    run(m, "-v", f"{proj}:/src", IMAGE, "sh", "-c",
        "echo from the container > /src/out.txt && chmod 750 /src/out.txt && ln -s out.txt /src/link && "
        "mkdir -p /src/a/b/c && echo deep > /src/a/b/c/d.txt && echo x > /src/gone && rm /src/gone && "
        "echo r > /src/before && mv /src/before /src/after")
    out = proj / "out.txt"
    assert out.read_text() == "from the container\n"
    st = out.stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert st.st_mode & 0o777 == 0o750
    assert os.readlink(proj / "link") == "out.txt"
    assert (proj / "a" / "b" / "c" / "d.txt").read_text() == "deep\n"
    assert not (proj / "gone").exists() and not (proj / "before").exists() and (proj / "after").exists()
    # the host changes a file: the container sees the new content at once
    (proj / "hello.txt").write_text("changed on the host\n")
    (proj / "new-on-host").write_text("new\n")
    assert run(m, "-v", f"{proj}:/src", IMAGE, "cat", "/src/hello.txt", "/src/new-on-host") == \
        "changed on the host\nnew\n"
    # a large file both ways
    big = proj / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 64)  # 64 MiB
    size = run(m, "-v", f"{proj}:/src", IMAGE, "sh", "-c",
               "cat /src/big.bin > /src/big2.bin && stat -c %s /src/big2.bin")
    assert int(size) == 64 << 20 and (proj / "big2.bin").read_bytes() == big.read_bytes()
    big.unlink()
    (proj / "big2.bin").unlink()


def check_restart_always_sees_shares(m: dict[str, Any]) -> None:
    proj = m["home"] / "proj"
    res = docker("run", "-d", "--restart", "always", "--name", "keeper", "-v", f"{proj}:/src", IMAGE, "sh", "-c",
                 "cat /src/hello.txt > /src/seen-$(date +%s%N) && sleep 100000", env=m["denv"])
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 120
    while not list(proj.glob("seen-*")) and time.monotonic() < deadline:
        time.sleep(0.5)
    first = set(proj.glob("seen-*"))
    assert len(first) == 1
    res = machine("restart", m["name"], env=m["env"], timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    deadline = time.monotonic() + 300
    second: set[Path] = set()
    while time.monotonic() < deadline:  # the shell creates the file before cat fills it: wait for its content
        second = set(proj.glob("seen-*")) - first
        if len(second) > 1 or (second and next(iter(second)).read_text()):
            break
        time.sleep(0.5)
    assert len(second) == 1, "the --restart always container did not write to the share after the restart"
    assert next(iter(second)).read_text() == (proj / "hello.txt").read_text()  # it read the host file again


def remove(m: dict[str, Any]) -> None:
    res = machine("rm", "-y", "-f", m["name"], env=m["env"], timeout=300)
    assert res.returncode == 0, res.stderr
