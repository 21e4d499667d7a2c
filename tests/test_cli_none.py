"""The none driver through the whole CLI, ported from docker-machine's CLI tests
(test/integration/cli/{create-rm,ls,inspect,status,url}.bats, core/core-commands.bats and
core/inspect_format.bats). Program name and wording follow ours; exit codes follow TEAM.md:
0 ok, 1 operation failed / not found, 2 usage or config error, 3 host cannot run the driver.

Where we deliberately differ from docker-machine:
- usage errors (bad name, unknown driver, extra argument, existing name) exit 2, not 1;
- `--url` must be a real engine URL (docker-machine's tests used `--url none`);
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.cli import CliResult, run

URL = "tcp://127.0.0.1:2376"


def ok(*argv: str, **kw: object) -> CliResult:
    result = run(*argv, **kw)  # type: ignore[arg-type]
    assert result.code == 0, result
    return result


def fails(code: int, *argv: str, **kw: object) -> CliResult:
    result = run(*argv, **kw)  # type: ignore[arg-type]
    assert result.crash is None, result
    assert result.code == code, result
    assert "Traceback" not in result.output
    return result


def create(name: str, url: str = URL) -> CliResult:
    return ok("create", "-d", "none", "--url", url, name)


def quiet_ls(*args: str) -> list[str]:
    return ok("ls", "-q", *args).out.splitlines()


@pytest.fixture
def store(store_root: Path) -> Path:
    return store_root


@pytest.fixture
def three(store: Path) -> Path:
    """As in ls.bats: created in the order 3, 2, 1."""
    create("testmachine3", "tcp://127.0.0.1:2373")
    create("testmachine2", "tcp://127.0.0.1:2372")
    create("testmachine", "tcp://127.0.0.1:2371")
    return store


# -- create (create-rm.bats) ----------------------------------------------------------------------


def test_create_with_unknown_driver(store: Path) -> None:
    result = fails(2, "create", "-d", "bogus", "bogus")
    assert result.err.startswith("Error: Driver 'bogus' not found")
    assert "none" in result.err.split("Hint:")[1]
    assert quiet_ls() == []


def test_create_without_name(store: Path) -> None:
    result = fails(2, "create", "-d", "none", "--url", URL)
    assert "Missing argument 'NAME'" in result.err


@pytest.mark.parametrize("name", ["∞", "-", ".", "..", "a b", "_x", "a_b", "a/b", "a" * 64])
def test_create_with_invalid_name(store: Path, name: str) -> None:
    result = fails(2, "create", "-d", "none", "--url", URL, name)
    assert "Error: Invalid machine name" in result.err
    assert "Hint: Names start with a letter or digit" in result.err
    assert quiet_ls() == []


@pytest.mark.parametrize("name", ["a", "0", "A.b-c", "1.2.3", "x" * 63])
def test_create_with_weird_but_valid_name(store: Path, name: str) -> None:
    create(name)
    assert quiet_ls() == [name]
    assert ok("url", name).out == URL + "\n"


def test_create_with_extra_argument(store: Path) -> None:
    result = fails(2, "create", "-d", "none", "--url", URL, "a", "extra")
    assert "unexpected extra argument (extra)" in result.err
    assert quiet_ls() == []


def test_create_with_same_name_again_fails_and_keeps_the_first(store: Path) -> None:
    create("dup", "tcp://127.0.0.1:2001")
    result = fails(2, "create", "-d", "none", "--url", "tcp://127.0.0.1:2002", "dup")
    assert "Error: Machine 'dup' already exists" in result.err
    assert ok("url", "dup").out.strip() == "tcp://127.0.0.1:2001"


@pytest.mark.parametrize(("args", "message"), [
    ([], "The none driver needs --url"),
    (["--url", "none"], "Invalid --url 'none'"),
    (["--url", "http://127.0.0.1:2376"], "Invalid --url"),
])
def test_create_with_missing_or_bad_url_leaves_nothing(store: Path, args: list[str], message: str) -> None:
    result = fails(2, "create", "-d", "none", *args, "m")
    assert message in result.err
    assert quiet_ls() == []
    assert not (store / "machines" / "m").exists()


def test_create_takes_url_from_the_environment(store: Path) -> None:
    ok("create", "-d", "none", "envurl", env={"NONE_URL": "tcp://127.0.0.1:2999"})
    assert ok("url", "envurl").out.strip() == "tcp://127.0.0.1:2999"


# -- ls (ls.bats, core-commands.bats) ---------------------------------------------------------------


def test_ls_filter_on_driver(three: Path) -> None:
    lines = ok("ls", "--filter", "driver=none").out.splitlines()
    assert len(lines) == 4
    assert [line.split()[0] for line in lines[1:]] == ["testmachine", "testmachine2", "testmachine3"]
    assert all("Running" in line and "none" in line for line in lines[1:])
    assert quiet_ls("--filter", "driver=none") == ["testmachine", "testmachine2", "testmachine3"]
    assert quiet_ls("--filter", "driver=qemu") == []


def test_ls_filter_on_state(three: Path) -> None:
    assert len(ok("ls", "--filter", "state=").out.splitlines()) == 4
    assert quiet_ls("--filter", "state=") == ["testmachine", "testmachine2", "testmachine3"]
    assert quiet_ls("--filter", "state=Running") == ["testmachine", "testmachine2", "testmachine3"]
    for state in ("Paused", "Saved", "Stopped", "Stopping", "Starting", "Error"):
        assert len(ok("ls", "--filter", f"state={state}").out.splitlines()) == 1, state


def test_ls_filter_on_name(three: Path) -> None:
    lines = ok("ls", "--filter", "name=testmachine2").out.splitlines()
    assert len(lines) == 2 and lines[1].split()[0] == "testmachine2"
    assert quiet_ls("--filter", "name=testmachine2") == ["testmachine2"]
    assert len(ok("ls", "--filter", "name=^t.*e").out.splitlines()) == 4
    assert quiet_ls("--filter", "name=^t.*e") == ["testmachine", "testmachine2", "testmachine3"]
    assert quiet_ls("--filter", "name=e$") == ["testmachine"]


def test_ls_multi_filter(three: Path) -> None:
    assert quiet_ls("--filter", "name=^t.*e", "--filter", "driver=none", "--filter", "state=") == \
        ["testmachine", "testmachine2", "testmachine3"]
    assert quiet_ls("--filter", "name=2", "--filter", "name=3", "--filter", "state=Running") == \
        ["testmachine2", "testmachine3"]


def test_ls_shows_url_and_active_with_docker_host(three: Path) -> None:
    out = ok("ls", env={"DOCKER_HOST": "tcp://127.0.0.1:2372"}).out.splitlines()
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["testmachine2"][1] == "*"
    assert rows["testmachine"][1] == "-" and rows["testmachine3"][1] == "-"
    assert rows["testmachine3"][4] == "tcp://127.0.0.1:2373"


def test_ls_format(three: Path) -> None:
    assert ok("ls", "--format", "{{.Name}} {{.DriverName}}").out.splitlines() == \
        ["testmachine none", "testmachine2 none", "testmachine3 none"]
    rows = json.loads(ok("ls", "--format", "json").out)
    assert [r["URL"] for r in rows] == ["tcp://127.0.0.1:2371", "tcp://127.0.0.1:2372", "tcp://127.0.0.1:2373"]


# -- inspect (inspect.bats, inspect_format.bats, core-commands.bats) --------------------------------


def test_inspect_without_args_and_no_default(store: Path) -> None:
    result = fails(1, "inspect")
    assert "Error: No machine name given, and there is no machine named 'default'" in result.err


def test_inspect_missing_machine(store: Path) -> None:
    assert "Error: Host does not exist: 'ghost'" in fails(1, "inspect", "ghost").err


def test_inspect(store: Path) -> None:
    create("m")
    view = json.loads(ok("inspect", "m").out)
    assert view["Name"] == "m" and view["DriverName"] == "none"
    # our option, and docker-machine's none driver fields alongside (its inspect -f scripts use them)
    assert view["Driver"]["url"] == URL and view["Driver"]["URL"] == URL and view["Driver"]["MachineName"] == "m"
    assert view["Engine"]["url"] == URL


def test_inspect_format(store: Path) -> None:
    create("m")
    assert ok("inspect", "-f", "{{.DriverName}}", "m").out == "none\n"
    assert ok("inspect", "-f", "{{json .DriverName}}", "m").out == '"none"\n'
    pretty = ok("inspect", "-f", "{{prettyjson .Driver}}", "m").out
    assert len(pretty.splitlines()) > 1 and json.loads(pretty)["url"] == URL
    assert ok("inspect", "--format", "{{.Driver.url}}", "m").out == URL + "\n"
    assert ok("inspect", "-f", "{{upper .Name}}", "m").out == "M\n"
    assert ok("inspect", "-f", "{{.Driver.SSHUser}}", "m").out == "\n"  # docker-machine's none has no SSH user
    result = fails(2, "inspect", "-f", "{{.Driver.SSHUsr}}", "m")
    assert "No field 'SSHUsr'" in result.err
    assert "Unsupported" in fails(2, "inspect", "-f", "{{range .Engine}}x{{end}}", "m").err


def test_commands_default_to_the_machine_named_default(store: Path) -> None:
    create("default", "tcp://127.0.0.1:2400")
    assert ok("url").out.strip() == "tcp://127.0.0.1:2400"
    assert ok("status").out.strip() == "Running"
    assert json.loads(ok("inspect").out)["Name"] == "default"


# -- url, ip, status (url.bats, status.bats, core-commands.bats) ------------------------------------


def test_url_ip_status(store: Path) -> None:
    create("m", "tcp://127.0.0.1:2555")
    assert ok("url", "m").out == "tcp://127.0.0.1:2555\n"
    assert ok("ip", "m").out == "127.0.0.1\n"
    assert ok("status", "m").out == "Running\n"


def test_url_status_ip_without_args(store: Path) -> None:
    for command in ("url", "status", "ip"):
        assert "No machine name given" in fails(1, command).err


def test_url_status_ip_of_missing_machine(store: Path) -> None:
    for command in ("url", "status", "ip"):
        assert "Host does not exist: 'ghost'" in fails(1, command, "ghost").err
    for command in ("url", "status", "ip"):
        assert "Invalid machine name" in fails(2, command, "∞").err


# -- lifecycle refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "message"), [
    ("stop", "cannot be stopped"),
    ("kill", "cannot be killed"),
    ("restart", "cannot be stopped"),
])
def test_stop_kill_restart_are_refused(store: Path, command: str, message: str) -> None:
    create("m")
    result = fails(1, command, "m")
    assert f"Error: A machine with the none driver {message}" in result.err
    assert "Hint: " in result.err
    assert ok("status", "m").out == "Running\n"
    assert quiet_ls() == ["m"]


def test_start_of_a_running_none_machine_fails_as_docker_machines_and_changes_nothing(store: Path) -> None:
    create("m")
    result = fails(1, "start", "m")
    assert "Error: Machine 'm' is already running." in result.err
    assert ok("status", "m").out == "Running\n"


def test_lifecycle_on_several_machines_reports_each_failure(store: Path) -> None:
    create("m1")
    create("m2", "tcp://127.0.0.1:2377")
    result = fails(1, "stop", "m1", "m2")
    assert "Error with m1" in result.err and "Error with m2" in result.err
    assert "2 of 2 machines failed" in result.err


# -- rm (create-rm.bats) ----------------------------------------------------------------------------


def test_rm_without_name(store: Path) -> None:
    assert "No machine name given" in fails(1, "rm").err


def test_rm_missing_machine(store: Path) -> None:
    assert "Error: Host does not exist: 'ghost'" in fails(1, "rm", "-y", "ghost").err
    assert "Invalid machine name '∞'" in fails(2, "rm", "-y", "∞").err


def test_rm_yes(store: Path) -> None:
    create("0")
    create("a")
    result = ok("rm", "-y", "0")
    assert "Successfully removed 0" in result.out
    assert quiet_ls() == ["a"]
    assert not (store / "machines" / "0").exists()
    ok("rm", "-y", "a")
    assert quiet_ls() == []


def test_rm_asks_for_confirmation(store: Path) -> None:
    create("m")
    result = ok("rm", "m", input="n\n")
    assert "Are you sure?" in result.out and "Not removed." in result.out
    assert quiet_ls() == ["m"]
    result = ok("rm", "m", input="y\n")
    assert "Successfully removed m" in result.out
    assert quiet_ls() == []


def test_rm_several_with_one_missing(store: Path) -> None:
    create("a")
    create("b")
    result = fails(1, "rm", "-y", "a", "ghost", "b")
    assert "ghost" in result.err
    assert quiet_ls() == []


def test_rm_leaves_the_engine_alone_and_can_recreate(store: Path) -> None:
    create("m")
    ok("rm", "-y", "m")
    create("m")
    assert quiet_ls() == ["m"]


# -- active (core-commands.bats, active) --------------------------------------------------------------


def test_active(store: Path) -> None:
    create("a", "tcp://127.0.0.1:2601")
    create("b", "tcp://127.0.0.1:2602")
    assert "Error: No active host found" in fails(1, "active").err
    assert ok("active", env={"DOCKER_HOST": "tcp://127.0.0.1:2602"}).out == "b\n"
    assert "No active host found" in fails(1, "active", env={"DOCKER_HOST": "tcp://127.0.0.1:9"}).err


def test_active_from_the_docker_context(store: Path) -> None:
    from machine.client import dockercontext

    create("a", "tcp://127.0.0.1:2601")
    create("b", "tcp://127.0.0.1:2602")
    dockercontext.use("a", "tcp://127.0.0.1:2601", None, "machine a")
    assert ok("active").out == "a\n"
    rows = {r["Name"]: r["Active"] for r in json.loads(ok("ls", "--format", "json").out)}
    assert rows == {"a": "*", "b": "-"}
    ok("rm", "-y", "a")
    assert "No active host found" in fails(1, "active").err


def test_version(store: Path) -> None:
    assert ok("version").out.startswith("machine version ")
