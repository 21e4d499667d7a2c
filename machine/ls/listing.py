"""What `machine ls` shows: filters, one row per machine, queried in parallel with a time bound.

Names, drivers, labels and swarm membership come from the store; state, URL and engine version
are asked of the drivers, all machines at once, so one dead host costs at most the timeout.
Filtering without `state=` (and `ls -q`) reads the store only and imports no driver.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from machine.errors import MachineError, TimeoutError_, UsageError
from machine.ls.namefilter import NamePattern, compile_filter
from machine.names import natural_key
from machine.store import MachineConfig, Store

DEFAULT_TIMEOUT = 10.0
# the engines' answers (DOCKER column) are waited for at most this long from the start of the queries: a hanging
# engine is told in ERRORS as a timeout without holding ls for the whole -t budget (driver status still gets -t)
ENGINE_TIMEOUT = 1.5
DEFAULT_FORMAT = ("table {{.Name}}\t{{.Active}}\t{{.DriverName}}\t{{.State}}\t{{.URL}}\t{{.Swarm}}"
                  "\t{{.DockerVersion}}\t{{.Error}}")
HEADERS = {
    "Name": "NAME",
    "Active": "ACTIVE",
    "ActiveHost": "ACTIVE_HOST",
    "DriverName": "DRIVER",
    "State": "STATE",
    "URL": "URL",
    "Swarm": "SWARM",
    "SwarmOptions": "SWARM_OPTIONS",
    "EngineOptions": "ENGINE_OPTIONS",
    "Labels": "LABELS",
    "DockerVersion": "DOCKER",
    "Error": "ERRORS",
    "ResponseTime": "RESPONSE",
}
FILTER_KEYS = ("name", "driver", "state", "label", "swarm")
UNKNOWN_VERSION = "Unknown"
RUNNING = "Running"
TIMEOUT = "Timeout"  # docker-machine's state for a host whose query did not end in time


@dataclass
class HostListItem:
    """One row of `machine ls`; the field names are the ones `--format` templates use."""

    Name: str
    Active: str = "-"
    ActiveHost: bool = False
    DriverName: str = ""
    State: str = ""
    URL: str = ""
    Swarm: str = ""
    SwarmOptions: dict[str, Any] = field(default_factory=dict)
    EngineOptions: dict[str, Any] = field(default_factory=dict)
    Labels: dict[str, str] = field(default_factory=dict)
    DockerVersion: str = UNKNOWN_VERSION
    Error: str = ""
    ResponseTime: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Filters:
    """Parsed --filter options: values of one key OR together, different keys AND."""

    name: list[NamePattern] = field(default_factory=list)
    driver: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    label: list[tuple[str, str | None]] = field(default_factory=list)
    swarm: list[str] = field(default_factory=list)

    @property
    def needs_state(self) -> bool:
        return bool(self.state)


@dataclass
class Entry:
    """A machine in the store: its config, or why it could not be read."""

    name: str
    cfg: MachineConfig | None = None
    error: str = ""


# -- filters ------------------------------------------------------------------------------------


def parse_filters(specs: Iterable[str]) -> Filters:
    """`name=REGEX`, `driver=D`, `state=S`, `label=K=V` (or `label=K`: has the label), `swarm=CLUSTER`.
    Values of one key OR, different keys AND; for labels, each label key counts as its own key
    (`label=tier=web --filter label=tier=db --filter label=env=dev`: (web or db) and dev).
    An empty value (`state=`) adds no condition. A bad filter is a UsageError naming it."""
    filters = Filters()
    for spec in specs:
        key, sep, value = spec.partition("=")
        key = key.strip().lower()
        if not sep:
            raise UsageError(f"Unsupported filter syntax {spec!r}", "Filters are KEY=VALUE, e.g. --filter driver=qemu.")
        if key not in FILTER_KEYS:
            raise UsageError(f"Unsupported filter key {key!r} in {spec!r}", f"Filter keys: {', '.join(FILTER_KEYS)}.")
        if value == "":
            continue
        if key == "name":
            filters.name.append(compile_filter(value))
        elif key == "label":
            k, has_value, v = value.partition("=")
            filters.label.append((k, v if has_value else None))
        else:
            getattr(filters, key).append(value)
    return filters


def matches_config(entry: Entry, filters: Filters) -> bool:
    """The filters that need only the store: name, driver, label, swarm."""
    if filters.name and not any(p.search(entry.name) for p in filters.name):
        return False
    cfg = entry.cfg
    drivers = {cfg.driver.lower(), str(cfg.origin.get("driver_name") or cfg.driver).lower()} if cfg else set()
    if filters.driver and not any(d.lower() in drivers for d in filters.driver):
        return False
    if filters.swarm and not (cfg and any(s.lower() == str(cfg.swarm.get("cluster", "")).lower()
                                          for s in filters.swarm)):
        return False
    if filters.label:
        labels = engine_labels(cfg) if cfg else {}
        wanted: dict[str, list[str | None]] = {}
        for k, v in filters.label:
            wanted.setdefault(k, []).append(v)
        for k, values in wanted.items():  # the same label key ORs, different label keys AND
            if k not in labels or not any(v is None or labels[k].lower() == v.lower() for v in values):
                return False
    return True


def matches_state(state: str, filters: Filters) -> bool:
    return not filters.state or any(s.lower() == state.lower() for s in filters.state)


def engine_labels(cfg: MachineConfig) -> dict[str, str]:
    """Engine labels as a dict (saved as a list of `k=v`; a dict is accepted too)."""
    raw = cfg.engine.get("labels") or []
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    labels: dict[str, str] = {}
    for item in raw:
        k, _, v = str(item).partition("=")
        labels[k] = v
    return labels


# -- reading the store --------------------------------------------------------------------------


def load_entries(store: Store) -> list[Entry]:
    """Every machine in the store, naturally sorted; unreadable configs carry their error."""
    entries = []
    for name in store.names():
        try:
            entries.append(Entry(name, store.load(name)))
        except MachineError as e:
            entries.append(Entry(name, None, one_line(e.message)))
        except (OSError, TypeError, ValueError) as e:  # anything else wrong with the file: a row, not a crash
            entries.append(Entry(name, None, one_line(f"Config of {name!r} cannot be read: {e}")))
    return sorted(entries, key=lambda e: natural_key(e.name))


def quiet_names(store: Store, filters: Filters) -> list[str]:
    """Names for `ls -q` when no state filter is given: the store only, no driver."""
    return [e.name for e in load_entries(store) if matches_config(e, filters)]


# -- querying machines --------------------------------------------------------------------------


def docker_version(store: Store, cfg: MachineConfig, timeout: float) -> str:
    """The DOCKER column: the engine version of a running machine ("v27.3.1"), `Unknown` when it does not answer."""
    from machine import provision

    return provision.engine_version_quick(store, cfg, timeout)


@dataclass
class Probe:
    """What the driver told us about one machine."""

    state: str
    url: str = ""
    version: str = UNKNOWN_VERSION
    error: str = ""
    took: float = 0.0
    cert_stale: bool = False  # the driver's address is outside the server certificate


def probe(store: Store, cfg: MachineConfig, deadline: float, debug: bool = False,
          engine_deadline: float | None = None) -> Probe:
    """Ask the driver for the state; for a running machine also the URL and engine version (asked until
    engine_deadline, when given, or deadline)."""
    from machine.orchestrator import driver_for

    started = time.monotonic()
    driver = driver_for(store, cfg, debug)
    state = str(driver.status())
    result = Probe(state)
    if state != RUNNING:
        result.error = one_line(driver.unexpected_exit())
    if state == RUNNING:
        try:
            result.url = str(cfg.engine.get("url") or driver.url() or "")
            if driver.features.managed_engine and not cfg.origin:  # a docker-machine record's certificates are its own
                from machine import provision

                result.cert_stale = provision.check_certs(store, cfg, driver) is not None
        except MachineError as e:
            result.error = one_line(e.message)
        if result.url:
            try:
                left = min(deadline, engine_deadline or deadline) - time.monotonic()
                result.version = docker_version(store, cfg, max(0.1, left))
            except TimeoutError as e:  # docker-machine's ls shows a host whose query never ends as Timeout
                result.state = TIMEOUT
                result.error = one_line(f"Unable to query docker version: {_text(e)}")
            except Exception as e:  # noqa: BLE001 - shown in the ERRORS column; the state stays the driver's
                result.error = one_line(f"Unable to query docker version: {_text(e)}")
        if not result.error:
            result.error = agent_error(store, cfg, driver)
    result.took = time.monotonic() - started
    return result


def agent_error(store: Store, cfg: MachineConfig, driver: Any) -> str:
    """For a running machine that should have an agent (it forwards published ports): "" when it runs."""
    from machine.agent import control

    if not control.wanted(cfg, driver) or control.running(store.machine_dir(cfg.name)):
        return ""
    return f"agent not running: published ports are not forwarded (machine start {cfg.name} restarts it)"


def list_machines(store: Store, filters: Filters, timeout: float = DEFAULT_TIMEOUT, debug: bool = False,
                  active_of: Callable[[], tuple[str, str | None]] | None = None,
                  stale_certs: list[str] | None = None) -> list[HostListItem]:
    """Rows for every machine passing the filters, querying all machines in parallel. Running machines
    whose address is outside their server certificate are appended to `stale_certs` when given."""
    from machine.ls.parallel import query_many

    entries = [e for e in load_entries(store) if matches_config(e, filters)]
    readable = {e.name: e.cfg for e in entries if e.cfg is not None}
    _preload({cfg.driver for cfg in readable.values()})
    deadline = time.monotonic() + timeout
    engines_by = time.monotonic() + min(ENGINE_TIMEOUT, timeout)
    results = query_many(list(readable), lambda n: probe(store, readable[n], deadline, debug, engines_by), timeout)
    if stale_certs is not None:
        stale_certs.extend(n for n, r in results.items() if isinstance(r, Probe) and r.cert_stale)
    docker_host, current = (active_of or active_targets)()
    rows = []
    for entry in entries:
        if entry.cfg is None:
            row = HostListItem(entry.name, DriverName="unknown", State="Error", Error=entry.error)
        else:
            row = _row(entry.cfg, results.get(entry.name), timeout, docker_host, current)
        if matches_state(row.State, filters):
            rows.append(row)
    return rows


def _preload(drivers: set[str]) -> None:
    """Import the drivers and the version hook here, not in the worker threads: imports racing in
    threads can deadlock on circular imports. A failure is left for each machine's query to report."""
    from machine import registry

    for name in sorted(drivers):
        try:
            registry.get(name)
        except Exception:  # noqa: BLE001 - the same error is shown in that machine's row
            pass
    if drivers:
        import machine.provision  # noqa: F401


def active_targets() -> tuple[str, str | None]:
    """($DOCKER_HOST, the machine whose docker context is current). DOCKER_HOST wins over the
    context in the docker CLI, so the context is only read when DOCKER_HOST is unset."""
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host:
        return docker_host, None
    from machine.client import dockercontext

    return "", dockercontext.current_machine()


def _row(cfg: MachineConfig, result: Any, timeout: float, docker_host: str, current: str | None) -> HostListItem:
    driver_name = str(cfg.origin.get("driver_name") or cfg.driver)  # a docker-machine record: its own name
    row = HostListItem(cfg.name, DriverName=driver_name, Swarm=swarm_column(cfg), SwarmOptions=dict(cfg.swarm),
                       EngineOptions=dict(cfg.engine), Labels=dict(cfg.labels))
    if isinstance(result, Probe):
        row.State, row.URL, row.DockerVersion, row.Error = result.state, result.url, result.version, result.error
        row.ResponseTime = go_duration(result.took)
        if result.state == RUNNING and cfg.share_errors and not row.Error:  # a share the guest could not mount
            row.Error = one_line("; ".join(cfg.share_errors))
    elif isinstance(result, TimeoutError_):
        row.State, row.Error, row.ResponseTime = TIMEOUT, one_line(result.message), go_duration(timeout)
    else:
        row.State, row.Error = "Error", one_line(_text(result))
    row.ActiveHost = is_active(row, docker_host, current)
    row.Active = "*" if row.ActiveHost else "-"
    return row


def is_active(row: HostListItem, docker_host: str, current: str | None) -> bool:
    """Running, and its URL is $DOCKER_HOST (which wins, as in the docker CLI) or its context is current."""
    if row.State != RUNNING:
        return False
    if docker_host:
        return bool(row.URL) and row.URL == docker_host
    return current == row.Name


def swarm_column(cfg: MachineConfig) -> str:
    cluster = str(cfg.swarm.get("cluster") or "")
    if not cluster:
        return ""
    return f"{cluster} (manager)" if cfg.swarm.get("role") == "manager" else cluster


# -- small helpers ------------------------------------------------------------------------------


def go_duration(seconds: float) -> str:
    """A duration as Go prints a millisecond-rounded time.Duration: 0s, 12ms, 1.5s."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    return f"{ms / 1000:g}s"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _text(error: Any) -> str:
    if isinstance(error, MachineError):
        return error.message
    return str(error) or type(error).__name__
