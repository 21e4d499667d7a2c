"""Issue 13: generated input through the whole CLI (in-process, the real entry point under click's isolation).
Whatever the names, URLs, sizes, counts, filters, templates, timeouts, shells, store paths and DOCKER_CONFIG
paths: no traceback, an exit code from the documented set, and a rejected create leaves no folder and starts
no VM (the none driver; libvirt on test:///default; qemu with stub binaries that log their arguments and refuse
to run)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.cli import CliResult, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from machine.client.shellenv import SHELLS
from machine.errors import TimeoutError_
from machine.orchestrator import boot

EXIT_CODES = {0, 1, 2, 3}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

weird = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
names = st.one_of(st.from_regex(r"\A[a-zA-Z0-9][a-zA-Z0-9.-]{0,20}\Z"), weird, st.just(""), st.just("a" * 70),
                  st.just("default"), st.sampled_from(["-x", ".", "..", "a/b", "a b", "é"]))
ports = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(["", "abc", "99999", "-1", "0", "2376", "+1"]),
                  weird)
hosts = st.one_of(st.sampled_from(["127.0.0.1", "[::1]", "[127.0.0.1]", "[::1", " 127.0.0.1", "localhost",
                                   "a" * 300, "999.1.1.1", "h_st", ""]), weird)
urls = st.one_of(st.builds(lambda s, h, p, sep: f"{s}://{h}{sep}{p}",
                           st.sampled_from(["tcp", "ssh", "unix", "http", "TCP", ""]), hosts, ports,
                           st.sampled_from([":", "", "/"])), weird)
numbers = st.one_of(st.integers(-(10**31), 10**31).map(str), st.integers(-3, 3000).map(str),
                    st.sampled_from(["nan", "inf", "1.5", "", "0x10", "1e3", " 1"]), weird)
filters = st.one_of(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["name", "driver", "state", "label",
                                                                        "swarm", "NAME", "bogus"]),
                              st.one_of(weird, st.sampled_from(["(a+)+$", "(" * 300, "[", r"\1", "(?=a)",
                                                                "a{99999999999}", ".*", "x{2,1}"]))),
                  weird)
templates = st.one_of(weird, st.sampled_from(["{{.Name}}", "{{", "}}", "{{.Nope}}", "table {{.Name}}\t{{.URL}}",
                                              "{{json .}}", "{{.Name | printf \"%q\"}}", "json", "{{range .}}"]),
                      st.builds(lambda t: "{{" + t + "}}", weird))
timeouts = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), numbers)
shells = st.one_of(st.sampled_from([*SHELLS, "PowerShell", "nu"]), weird)


@pytest.fixture(scope="module")
def stub_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qemu-system-x86_64 and qemu-img that record each call and refuse to run (exit 1)."""
    directory = tmp_path_factory.mktemp("stub-bin")
    log = directory / "calls.log"
    for program in ("qemu-system-x86_64", "qemu-system-aarch64", "qemu-img"):
        script = directory / program
        script.write_text(f"#!/bin/sh\necho \"{program} $*\" >> {log}\necho 'stub: refusing to run' >&2\nexit 1\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


@pytest.fixture(autouse=True)
def no_boot_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A create that gets as far as waiting for the guest fails at once (no guest answers here): the test is about
    what happens to input, and the rollback of a create that fails late."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise TimeoutError_("no guest in this test", "")

    monkeypatch.setattr(boot, "wait_ready", refuse)  # where create and start call it


@pytest.fixture
def fresh() -> Iterator[Path]:
    """A scratch folder per example (hypothesis runs many examples in one test call)."""
    made: list[str] = []

    def make() -> Path:
        made.append(tempfile.mkdtemp(prefix="machine-prop-"))
        return Path(made[-1])

    yield make  # type: ignore[misc]
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def env_for(root: Path, **extra: str) -> dict[str, str | None]:
    return {"MACHINE_STORAGE_PATH": str(root / "store"), "DOCKER_CONFIG": str(root / "docker"), "DOCKER_HOST": None,
            "DOCKER_CONTEXT": None, "LIBVIRT_URI": "test:///default", **extra}


def sane(result: CliResult) -> CliResult:
    assert result.crash is None, result
    assert "Traceback" not in result.output, result
    assert result.code in EXIT_CODES, result
    return result


def machine_dirs(root: Path) -> list[str]:
    machines = root / "store" / "machines"
    if not machines.is_dir():
        return []
    return [p.name for p in machines.iterdir() if not p.name.startswith(".")]


@SETTINGS
@given(name=names, url=urls)
def test_create_none(fresh, name: str, url: str) -> None:  # noqa: ANN001
    root = fresh()
    result = sane(run("create", "-d", "none", "--url", url, name, env=env_for(root)))
    if result.code != 0:
        assert machine_dirs(root) == [], result
        return
    for command in (["ls"], ["env", name], ["url", name], ["inspect", name], ["status", name], ["config", name]):
        sane(run(*command, env=env_for(root)))
    sane(run("rm", "-y", name, env=env_for(root)))
    assert machine_dirs(root) == []


@SETTINGS
@given(name=names, cpus=numbers, memory=numbers, disk=numbers)
def test_create_libvirt_test_driver(fresh, name: str, cpus: str, memory: str, disk: str) -> None:  # noqa: ANN001
    pytest.importorskip("libvirt")
    root = fresh()
    result = sane(run("create", "-d", "libvirt", "--libvirt-cpus", cpus, "--libvirt-memory", memory,
                      "--libvirt-disk-size", disk, name, env=env_for(root)))
    assert result.code != 0  # no guest answers: every create fails, early or late
    assert machine_dirs(root) == [], result


@SETTINGS
@given(name=names, cpus=numbers, memory=numbers, disk=numbers, address=st.one_of(hosts, weird))
def test_create_qemu_with_a_refusing_binary(fresh, stub_bin: Path, name: str, cpus: str, memory: str,  # noqa: ANN001
                                            disk: str, address: str) -> None:
    root = fresh()
    log = stub_bin / "calls.log"
    log.unlink(missing_ok=True)
    result = sane(run("create", "-d", "qemu", "--qemu-cpus", cpus, "--qemu-memory", memory, "--qemu-disk-size",
                      disk, "--qemu-host-address", address, name,
                      env=env_for(root, PATH=f"{stub_bin}{os.pathsep}/usr/bin{os.pathsep}/bin")))
    assert result.code != 0
    assert machine_dirs(root) == [], result
    calls = log.read_text().splitlines() if log.exists() else []
    assert not [c for c in calls if c.startswith("qemu-system") and "-kernel" in c and result.code == 2], calls


@SETTINGS
@given(spec=st.lists(filters, max_size=3), template=templates, timeout=timeouts, quiet=st.booleans())
def test_ls(fresh, spec: list[str], template: str, timeout: str, quiet: bool) -> None:  # noqa: ANN001
    root = fresh()
    for name in ("dev-1", "a" * 29):
        assert run("create", "-d", "none", "--url", "tcp://127.0.0.1:2376", name, env=env_for(root)).code == 0
    argv = ["ls", "-t", timeout, "--format", template, *[x for f in spec for x in ("--filter", f)]]
    sane(run(*argv, *(["-q"] if quiet else []), env=env_for(root)))


@SETTINGS
@given(shell=shells, name=names, unset=st.booleans())
def test_env_shells_and_names(fresh, shell: str, name: str, unset: bool) -> None:  # noqa: ANN001
    root = fresh()
    assert run("create", "-d", "none", "--url", "tcp://127.0.0.1:2376", "m", env=env_for(root)).code == 0
    sane(run("env", "--shell", shell, *(["-u"] if unset else []), name, env=env_for(root)))
    for command in (["rm", "-y", name], ["inspect", name], ["use", name], ["stop", name], ["ssh", name, "true"]):
        sane(run(*command, env=env_for(root)))
    if name != "m":
        assert "m" in machine_dirs(root)


PATHS = st.one_of(st.sampled_from(["/dev/null", "/etc/passwd", "/proc/1", "/proc/self/fd/0", "/", "relative/dir",
                                   "~nobody-such/x", "/dev/null/x", ""]), st.builds(lambda t: f"/tmp/{t}", weird))


@SETTINGS
@given(store=PATHS, docker_config=PATHS, command=st.sampled_from([["ls"], ["ls", "-q"], ["active"], ["use", "m"],
                                                                  ["env", "m"], ["rm", "-y", "m"], ["url", "m"],
                                                                  ["create", "-d", "none", "--url",
                                                                   "tcp://127.0.0.1:2376", "m"]]))
def test_store_and_docker_config_paths(fresh, store: str, docker_config: str, command: list[str]) -> None:  # noqa: ANN001
    root = fresh()
    env = env_for(root)
    env["MACHINE_STORAGE_PATH"] = store.replace("/tmp/", f"{root}/") if store.startswith("/tmp/") else store
    env["DOCKER_CONFIG"] = docker_config.replace("/tmp/", f"{root}/") if docker_config.startswith("/tmp/") \
        else docker_config
    cwd = os.getcwd()
    os.chdir(root)  # relative paths land in the scratch folder
    try:
        sane(run(*command, env=env))
    finally:
        os.chdir(cwd)
