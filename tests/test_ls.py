"""`machine ls`: parallel queries bounded by -t, filters, formats, -q without drivers, error rows;
and the Go-template renderer behind --format and `inspect -f`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fakes import slow_driver
from fakes.cli import run
from fakes.slow_driver import add_machine
from fakes.tlsengine import FakeEngine

from machine.errors import UsageError
from machine.ls import gotemplate, listing
from machine.store import Store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(store_root: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """An isolated store with the fake driver registered and no current docker context."""
    slow_driver.register(monkeypatch)
    monkeypatch.setattr(listing, "active_targets", lambda: (os.environ.get("DOCKER_HOST", ""), None))
    return Store(store_root)


def ls_json(*args: str) -> list[dict]:
    result = run("ls", "--format", "json", *args)
    assert result.code == 0, result
    return json.loads(result.out)


def names_of(rows: list[dict]) -> list[str]:
    return [r["Name"] for r in rows]


# -- timeout and parallelism --------------------------------------------------------------------


def test_slow_machine_times_out_without_delaying_the_others(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # the fake driver's machines have no engine: their version is answered here, so ERRORS is the driver's alone
    monkeypatch.setattr(listing, "docker_version", lambda store, cfg, timeout: "v27.1.0")
    add_machine(store, "fast1")
    add_machine(store, "fast2", state="Stopped")
    add_machine(store, "slow", delay=5)
    add_machine(store, "fast3")
    started = time.monotonic()
    rows = {r["Name"]: r for r in ls_json("-t", "1")}
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"ls -t 1 took {elapsed:.1f} s"
    assert elapsed >= 0.9
    assert rows["slow"]["State"] == "Timeout"
    assert "timed out after 1 s" in rows["slow"]["Error"]
    assert rows["fast1"]["State"] == "Running" and rows["fast1"]["Error"] == ""
    assert rows["fast2"]["State"] == "Stopped" and rows["fast2"]["URL"] == ""
    assert rows["fast3"]["URL"].startswith("tcp://127.0.0.1:")


def test_many_slow_machines_cost_one_timeout_not_the_sum(store: Store) -> None:
    for i in range(4):
        add_machine(store, f"slow{i}", delay=0.6)
    started = time.monotonic()
    rows = ls_json("-t", "5")
    elapsed = time.monotonic() - started
    assert [r["State"] for r in rows] == ["Running"] * 4
    assert elapsed < 2.0, f"4 machines of 0.6 s each took {elapsed:.1f} s: not queried in parallel"


def test_process_exits_at_the_timeout_not_when_the_slow_driver_returns(store_root: Path) -> None:
    """The whole `machine ls -t 1` process (interpreter exit included) ends within the bound."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        import pytest
        from fakes import slow_driver
        from machine.store import Store
        mp = pytest.MonkeyPatch()
        slow_driver.register(mp)
        from machine.ls import listing
        mp.setattr(listing, "active_targets", lambda: ("", None))
        store = Store()
        slow_driver.add_machine(store, "quick")
        slow_driver.add_machine(store, "stuck", delay=60)
        from machine.cli import main
        main(["ls", "-t", "1"])
    """)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "Timeout" in next(line for line in lines if line.startswith("stuck"))
    # the stuck query answers after 60 s: a process that waited for it at exit would take that long; one that ends
    # at the 1 s timeout takes 1-3 s here, up to ~10 s while VMs load the host (4 was too tight at load 9)
    assert elapsed < 20, f"process took {elapsed:.1f} s: it waited for the stuck query at exit"


def test_failing_driver_is_an_error_row(store: Store) -> None:
    add_machine(store, "ok")
    add_machine(store, "broken", fail="hypervisor unreachable")
    rows = {r["Name"]: r for r in ls_json()}
    assert rows["broken"]["State"] == "Error"
    assert rows["broken"]["Error"] == "hypervisor unreachable"
    assert rows["ok"]["State"] == "Running"


# -- the default table --------------------------------------------------------------------------


def test_default_table_columns_and_natural_order(store: Store) -> None:
    add_machine(store, "m10", url="tcp://127.0.0.1:2010")
    add_machine(store, "m2", state="Stopped")
    add_machine(store, "M1", url="tcp://127.0.0.1:2001", swarm={"cluster": "c1", "role": "manager"})
    add_machine(store, "w1", url="tcp://127.0.0.1:2002", swarm={"cluster": "c1", "role": "worker"})
    result = run("ls")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "SWARM", "DOCKER", "ERRORS"]
    assert [line.split()[0] for line in lines[1:]] == ["M1", "m2", "m10", "w1"]
    header = lines[0]
    for line in lines[1:]:  # columns start where the header's do
        assert line[header.index("DRIVER"):].startswith("fake")
    m1 = lines[1]
    assert m1[header.index("URL"):].startswith("tcp://127.0.0.1:2001")
    assert m1[header.index("SWARM"):].startswith("c1 (manager)")
    assert lines[4][header.index("SWARM"):].startswith("c1 ")
    assert "Unknown" in m1  # no engine version query available for the fake driver
    assert lines[2][header.index("STATE"):].startswith("Stopped")


def test_empty_store_prints_only_the_header(store: Store) -> None:
    result = run("ls")
    assert result.code == 0
    assert result.out.split() == ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "SWARM", "DOCKER", "ERRORS"]


def test_docker_version_hook(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_machine(store, "up")
    add_machine(store, "down", state="Stopped")
    asked: list[str] = []

    def version(store: Store, cfg, timeout: float) -> str:  # noqa: ANN001
        asked.append(cfg.name)
        assert 0 < timeout <= 10
        return "v27.1.0"

    monkeypatch.setattr(listing, "docker_version", version)
    rows = {r["Name"]: r for r in ls_json()}
    assert rows["up"]["DockerVersion"] == "v27.1.0"
    assert rows["down"]["DockerVersion"] == "Unknown"
    assert asked == ["up"]


def test_docker_version_failure_shows_unknown_and_the_error(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_machine(store, "up")

    def version(store: Store, cfg, timeout: float) -> str:  # noqa: ANN001
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(listing, "docker_version", version)
    [row] = ls_json()
    assert row["DockerVersion"] == "Unknown"
    assert "connection refused" in row["Error"]
    assert row["State"] == "Running"


# -- active -------------------------------------------------------------------------------------


def test_active_is_the_running_machine_at_docker_host(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_machine(store, "a", url="tcp://127.0.0.1:3001")
    add_machine(store, "b", url="tcp://127.0.0.1:3002")
    add_machine(store, "c", url="tcp://127.0.0.1:3002", state="Stopped")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:3002")
    rows = {r["Name"]: r["Active"] for r in ls_json()}
    assert rows == {"a": "-", "b": "*", "c": "-"}


def test_active_from_current_docker_context(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_machine(store, "a")
    add_machine(store, "b")
    monkeypatch.setattr(listing, "active_targets", lambda: ("", "b"))
    rows = {r["Name"]: (r["Active"], r["ActiveHost"]) for r in ls_json()}
    assert rows == {"a": ("-", False), "b": ("*", True)}
    # DOCKER_HOST wins over the context, as in the docker CLI
    monkeypatch.setattr(listing, "active_targets", lambda: ("tcp://127.0.0.1:1", "b"))
    assert {r["Active"] for r in ls_json()} == {"-"}


# -- filters ------------------------------------------------------------------------------------


@pytest.fixture
def fleet(store: Store) -> Store:
    add_machine(store, "dev1", labels=["env=dev", "tier=web"])
    add_machine(store, "dev2", state="Stopped", labels=["env=dev", "tier=db"])
    add_machine(store, "prod1", labels=["env=prod", "tier=web"], swarm={"cluster": "blue", "role": "manager"})
    add_machine(store, "prod2", state="Paused", labels=["env=PROD"], swarm={"cluster": "blue", "role": "worker"})
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:2376", "other")
    return store


@pytest.mark.parametrize(("filters", "expected"), [
    (["name=dev"], ["dev1", "dev2"]),
    (["name=^p.*2$"], ["prod2"]),
    (["name=1$", "name=^oth"], ["dev1", "other", "prod1"]),
    (["driver=none"], ["other"]),
    (["driver=FAKE"], ["dev1", "dev2", "prod1", "prod2"]),
    (["state=Running"], ["dev1", "other", "prod1"]),
    (["state=stopped", "state=Paused"], ["dev2", "prod2"]),
    (["state="], ["dev1", "dev2", "other", "prod1", "prod2"]),
    (["label=env=dev"], ["dev1", "dev2"]),
    (["label=env=prod"], ["prod1", "prod2"]),
    (["label=tier=web", "label=tier=db"], ["dev1", "dev2", "prod1"]),
    (["label=env=dev", "label=env=prod"], ["dev1", "dev2", "prod1", "prod2"]),
    (["label=tier"], ["dev1", "dev2", "prod1"]),
    (["label=env=dev", "tier=web".join(["label=", ""])], ["dev1"]),
    (["swarm=blue"], ["prod1", "prod2"]),
    (["driver=fake", "state=Running"], ["dev1", "prod1"]),
    (["driver=fake", "state=Running", "label=tier=web", "name=prod"], ["prod1"]),
    (["driver=none", "state=Stopped"], []),
])
def test_filters(fleet: Store, filters: list[str], expected: list[str]) -> None:
    args = [a for f in filters for a in ("--filter", f)]
    assert names_of(ls_json(*args)) == expected
    quiet = run("ls", "-q", *args)
    assert quiet.code == 0, quiet
    assert quiet.out.splitlines() == expected


def test_filter_and_table_header_even_when_nothing_matches(fleet: Store) -> None:
    result = run("ls", "--filter", "state=Saved")
    assert result.code == 0
    assert len(result.out.splitlines()) == 1


@pytest.mark.parametrize(("spec", "named"), [
    ("foo=bar", "'foo'"),
    ("driver", "'driver'"),
    ("name=[unclosed", "'name=[unclosed'"),
])
def test_bad_filter_is_a_usage_error_naming_it(fleet: Store, spec: str, named: str) -> None:
    result = run("ls", "--filter", spec)
    assert result.code == 2, result
    assert named in result.err
    assert "Traceback" not in result.output
    assert run("ls", "-q", "--filter", spec).code == 2


def test_parse_filters_keeps_values_with_equals() -> None:
    parsed = listing.parse_filters(["driver=bar=baz", "LABEL=k=v=w", "label=flag"])
    assert parsed.driver == ["bar=baz"]
    assert parsed.label == [("k", "v=w"), ("flag", None)]
    with pytest.raises(UsageError, match="Unsupported filter key 'color'"):
        listing.parse_filters(["color=red"])


# -- formats ------------------------------------------------------------------------------------


def test_format_fields(fleet: Store) -> None:
    result = run("ls", "--filter", "name=dev", "--format", "{{.Name}}:{{.DriverName}}:{{.State}}:{{lower .Active}}")
    assert result.code == 0, result
    assert result.out.splitlines() == ["dev1:fake:Running:-", "dev2:fake:Stopped:-"]


def test_format_table_adds_headers_and_aligns(fleet: Store) -> None:
    result = run("ls", "--filter", "name=prod", "--format", r"table {{.Name}}\t{{upper .State}}\t{{.Swarm}}")
    assert result.code == 0, result
    assert result.out.splitlines() == [
        "NAME    STATE     SWARM",
        "prod1   RUNNING   blue (manager)",
        "prod2   PAUSED    blue",
    ]


def test_format_json_directive_per_row(fleet: Store) -> None:
    result = run("ls", "--filter", "name=other", "--format", "{{json .}}")
    assert result.code == 0, result
    [line] = result.out.splitlines()
    row = json.loads(line)
    assert row["Name"] == "other" and row["DriverName"] == "none"
    assert row["URL"] == "tcp://127.0.0.1:2376"
    assert row["EngineOptions"]["port"] == 2376
    nested = run("ls", "--filter", "name=dev1", "--format", "{{.EngineOptions.labels}} {{json .SwarmOptions}}")
    assert nested.out == "[env=dev tier=web] {}\n"


def test_format_json_is_an_array(fleet: Store) -> None:
    rows = ls_json("--filter", "swarm=blue")
    assert isinstance(rows, list) and names_of(rows) == ["prod1", "prod2"]
    assert rows[0]["Swarm"] == "blue (manager)"
    assert rows[0]["SwarmOptions"] == {"cluster": "blue", "role": "manager"}
    assert set(rows[0]) >= {"Name", "Active", "DriverName", "State", "URL", "Swarm", "DockerVersion", "Error"}
    assert run("ls", "--format", "json", "--filter", "name=nothing").out.strip() == "[]"


@pytest.mark.parametrize("fmt", ["{{.Nope}}", "{{if .Name}}x{{end}}", "{{.Name | upper}}", "{{.Name"])
def test_bad_format_fails_fast_with_usage_error(store: Store, fmt: str) -> None:
    add_machine(store, "slow", delay=5)
    started = time.monotonic()
    result = run("ls", "--format", fmt)
    assert time.monotonic() - started < 2, "the format must be checked before machines are queried"
    assert result.code == 2, result
    assert "Traceback" not in result.output and "Error:" in result.err


# -- quiet mode and broken configs ----------------------------------------------------------------


def test_quiet_lists_names_without_asking_drivers(store: Store) -> None:
    add_machine(store, "b10", delay=5)
    add_machine(store, "b9", fail="must not be asked")
    started = time.monotonic()
    result = run("ls", "-q")
    assert time.monotonic() - started < 2
    assert result.out.splitlines() == ["b9", "b10"]


def test_quiet_with_state_filter_asks_drivers(store: Store) -> None:
    add_machine(store, "up")
    add_machine(store, "down", state="Stopped")
    assert run("ls", "-q", "--filter", "state=Stopped").out.splitlines() == ["down"]


def test_corrupt_config_is_an_error_row(store: Store) -> None:
    add_machine(store, "good")
    add_machine(store, "bad")
    add_machine(store, "future")
    add_machine(store, "binary")
    (store.config_path("bad")).write_text("{not json")
    (store.config_path("binary")).write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    (store.machines_dir / "not valid").mkdir()
    (store.machines_dir / "not valid" / "config.json").write_text("{}")
    cfg = json.loads(store.config_path("future").read_text())
    cfg["schema_version"] = 99
    store.config_path("future").write_text(json.dumps(cfg))
    result = run("ls")
    assert result.code == 0, result
    assert "Traceback" not in result.output
    lines = {line.split()[0]: line for line in result.out.splitlines()[1:]}
    assert set(lines) == {"bad", "binary", "future", "good", "not"}
    assert "not UTF-8" in lines["binary"]
    assert "Invalid machine name 'not valid'" in lines["not"]
    assert "Error" in lines["bad"] and "corrupt" in lines["bad"] and str(store.config_path("bad")) in lines["bad"]
    assert "schema version 99" in lines["future"]
    assert "Running" in lines["good"]
    rows = {r["Name"]: r for r in ls_json()}
    assert rows["bad"]["State"] == "Error" and "\n" not in rows["bad"]["Error"]
    assert run("ls", "-q").out.splitlines() == ["bad", "binary", "future", "good", "not valid"]
    # store-only filters treat an unreadable machine as having no driver or labels
    assert names_of(ls_json("--filter", "driver=fake")) == ["good"]
    assert names_of(ls_json("--filter", "state=Error")) == ["bad", "binary", "future", "not valid"]


def test_quiet_imports_no_driver_ssh_or_tls_library(store_root: Path) -> None:
    store = Store(store_root)
    for name in ("one", "two"):
        store.make_machine_dir(name)
        from machine.store import MachineConfig

        store.save(MachineConfig(name=name, driver="none", driver_options={"url": "tcp://127.0.0.1:2376"},
                                 engine={"url": "tcp://127.0.0.1:2376"}))
    script = textwrap.dedent("""
        import json, sys
        from machine.cli import main
        try:
            main(["ls", "-q", "--filter", "driver=none", "--filter", "name=o"])
        except SystemExit as e:
            code = e.code
        banned = ("machine.drivers", "paramiko", "libvirt", "winrm", "cryptography", "machine.orchestrator")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in banned or m.startswith(banned))
        print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MACHINE_STORAGE_PATH": str(store_root)})
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert proc.stdout.splitlines() == ["one", "two"]
    assert report == {"code": 0, "loaded": []}


# -- the template renderer ------------------------------------------------------------------------


def test_render_fields_nested_and_functions() -> None:
    data = {"Name": "m1", "Driver": {"CPU": 2, "Disk": {"Size": "20G"}}, "On": True, "Tags": ["a", "b"],
            "Map": {"z": 1, "a": None}}
    assert gotemplate.render("{{.Name}}/{{ .Driver.Disk.Size }}", data) == "m1/20G"
    assert gotemplate.render("{{json .Driver}}", data) == '{"CPU":2,"Disk":{"Size":"20G"}}'
    assert gotemplate.render("{{json .Name}}", data) == '"m1"'
    assert gotemplate.render("{{upper .Name}}{{lower .Name}}", data) == "M1m1"
    assert gotemplate.render("{{.On}} {{.Tags}} {{.Map}} {{.Driver.CPU}}", data) == "true [a b] map[a:<nil> z:1] 2"
    assert json.loads(gotemplate.render("{{json .}}", data)) == data
    pretty = gotemplate.render("{{prettyjson .Driver}}", data)
    assert len(pretty.splitlines()) > 1 and json.loads(pretty) == data["Driver"]
    assert gotemplate.render(r"{{.Name}}\t{{.Name}}\n", data) == "m1\tm1\n"
    assert gotemplate.render("{{.Name -}}   -   {{- .Name}}", data) == "m1-m1"
    assert gotemplate.render("plain text }}", data) == "plain text }}"


def test_render_rows_table_alignment_like_tabwriter() -> None:
    template = gotemplate.parse(r"table {{.A}}\t{{.LongerName}}\t{{.C}}")
    assert template.table
    out = gotemplate.render_rows(template, [{"A": "x", "LongerName": "", "C": "end"},
                                            {"A": "wide-cell", "LongerName": "y", "C": ""}], {"A": "COL_A"})
    assert out.splitlines() == [
        "COL_A       LONGERNAME   C",
        "x                        end",
        "wide-cell   y",
    ]
    plain = gotemplate.parse("{{.A}}")
    assert gotemplate.render_rows(plain, [{"A": 1}, {"A": 2}]) == "1\n2\n"


@pytest.mark.parametrize(("fmt", "message"), [
    ("{{if .A}}x{{end}}", "Unsupported template action '{{if .A}}'"),
    ("{{range .A}}", "Unsupported template action"),
    ("{{.A | upper}}", "Unsupported template action"),
    ("{{printf \"%s\" .A}}", "Unsupported template action"),
    ("{{json}}", "json takes one field"),
    ("{{upper .A .B}}", "upper takes one field"),
    ("{{.A", "Unclosed '{{'"),
    ("{{}}", "Empty action"),
    ("{{.A.}}", "Unsupported template action"),
    ("{{.Missing}}", "No field 'Missing'"),
    ("{{.A.B}}", "Cannot take field 'B' of .A"),
])
def test_render_rejects_what_it_does_not_support(fmt: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        gotemplate.render(fmt, {"A": "text"})
    assert message in info.value.message
    assert info.value.hint


def test_listing_helpers() -> None:
    assert sorted(["m10", "M2", "m1", "a", "m2b"], key=listing.natural_key) == ["a", "m1", "M2", "m2b", "m10"]
    assert listing.go_duration(0.0004) == "0s"
    assert listing.go_duration(0.0123) == "12ms"
    assert listing.go_duration(1.5) == "1.5s"
    assert listing.one_line("a\n  b\tc ") == "a b c"


# -- the DOCKER column end to end: a fake engine speaking mutual TLS on loopback -----------------


def serve_engine(certs_dir: Path, work_dir: Path, version: str, hang: bool = False) -> FakeEngine:
    """A fake engine on 127.0.0.1 with a server certificate from the store's CA."""
    from machine.provision import certs

    certs.issue_server_cert(certs_dir, work_dir / "server.pem", work_dir / "server-key.pem",
                            name="engine", ips=["127.0.0.1"], dns=["localhost"])
    return FakeEngine(work_dir / "server.pem", work_dir / "server-key.pem", certs_dir / "ca.pem", version=version,
                      api="1.47", hang=hang)


def engine_machine(store_root: Path, work_dir: Path, name: str, version: str, hang: bool = False):  # noqa: ANN201
    """A none machine pointing at a fake engine, with the client certificates in its directory."""
    from machine.provision import certs

    store = Store(store_root)
    server = serve_engine(store.certs_dir, work_dir, version, hang)
    result = run("create", "-d", "none", "--url", f"tcp://127.0.0.1:{server.port}", name)
    assert result.code == 0, result
    certs.copy_client_certs(store.certs_dir, store.machine_dir(name))
    return server


def test_docker_column_shows_the_engine_version(store_root: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "active_targets", lambda: ("", None))
    server = engine_machine(store_root, tmp_path, "eng", "27.3.1")
    try:
        run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "noengine")
        result = run("ls")
        assert result.code == 0, result
        lines = {line.split()[0]: line for line in result.out.splitlines()[1:]}
        assert "v27.3.1" in lines["eng"]
        assert "Unknown" in lines["noengine"]
        assert run("ls", "--filter", "name=^eng$", "--format", "{{.DockerVersion}}").out == "v27.3.1\n"
    finally:
        server.close()


def test_a_hanging_engine_does_not_hold_ls_beyond_the_timeout(store_root: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "active_targets", lambda: ("", None))
    server = engine_machine(store_root, tmp_path, "hung", "27.3.1", hang=True)
    try:
        started = time.monotonic()
        result = run("ls", "-t", "1", "--format", "json")
        elapsed = time.monotonic() - started
        assert result.code == 0, result
        [row] = json.loads(result.out)
        assert row["State"] in ("Running", "Timeout") and row["DockerVersion"] == "Unknown"
        assert elapsed < 3, f"ls -t 1 took {elapsed:.1f} s with a hanging engine"
    finally:
        server.close()


def test_machine_of_an_uninstalled_driver_is_an_error_row(store: Store) -> None:
    from machine.store import MachineConfig

    add_machine(store, "fine")
    store.save(MachineConfig(name="orphan", driver="uninstalled-driver"))
    rows = {r["Name"]: r for r in ls_json()}
    assert rows["orphan"]["State"] == "Error"
    assert rows["orphan"]["DriverName"] == "uninstalled-driver"
    assert "Driver 'uninstalled-driver' not found" in rows["orphan"]["Error"]
    assert rows["fine"]["State"] == "Running"
    assert names_of(ls_json("--filter", "driver=uninstalled-driver")) == ["orphan"]
