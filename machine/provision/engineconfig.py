"""The engine's configuration, rendered from `cfg.engine` as pure functions: daemon.json, the systemd
drop-in (ExecStart without `-H fd://`, Environment=), the OpenRC conf.d block and the machine OS env file.

Safety rule, checked on every render: the engine listens on TCP only with TLS client verification
(`tlsverify: true` and the three TLS files). Options that would change that (`hosts`, `tls*`) cannot
be given through --engine-opt.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from machine.errors import UsageError

DOCKER_DIR = "/etc/docker"
UNIX_SOCKET = "unix:///var/run/docker.sock"
# daemon.json keys that decide who may reach the engine: never from --engine-opt
PROTECTED = frozenset({"hosts", "host", "h", "tls", "tlsverify", "tlscacert", "tlscert", "tlskey"})
# daemon.json keys whose value is a list even when given once
LIST_KEYS = frozenset({"dns", "dns-opts", "dns-search", "exec-opts", "storage-opts", "default-ulimits-list",
                       "authorization-plugins", "allow-nondistributable-artifacts", "node-generic-resources",
                       "cdi-spec-dirs", "features-list"})
# daemon.json keys that hold a map; --engine-opt log-opt=max-size=10m -> {"log-opts": {"max-size": "10m"}}
MAP_KEYS = {"log-opt": "log-opts", "log-opts": "log-opts", "default-address-pool": "default-address-pools"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FD_HOST = re.compile(r"\s+(?:-H|--host)(?:=|\s+)fd://\S*")


@dataclass(frozen=True)
class TLSFiles:
    """Where the engine's TLS files live in the guest."""

    ca: str = f"{DOCKER_DIR}/ca.pem"
    cert: str = f"{DOCKER_DIR}/server.pem"
    key: str = f"{DOCKER_DIR}/server-key.pem"


def split_kv(items: Iterable[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} takes KEY=VALUE, got {item!r}", f"Example: {flag} foo=bar")
        pairs.append((key.strip(), value))
    return pairs


def _scalar(value: str) -> Any:
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return value


def engine_opts(opts: Iterable[str]) -> dict[str, Any]:
    """--engine-opt K=V items as daemon.json entries. `--` prefixes are dropped; a key given twice (or a
    known list key) becomes a list; log-opt=K=V builds the log-opts map; true/false/integers are typed."""
    out: dict[str, Any] = {}
    for key, value in split_kv(opts, "--engine-opt"):
        key = key.lstrip("-")
        if key.lower() in PROTECTED:
            raise UsageError(f"--engine-opt {key} cannot be set", "The engine's listen addresses and TLS are managed "
                             "by machine (TCP only with TLS client verification).")
        if key in MAP_KEYS:
            sub, sep, subval = value.partition("=")
            if not sep:
                raise UsageError(f"--engine-opt {key} takes {key}=NAME=VALUE, got {value!r}",
                                 f"Example: --engine-opt {key}=max-size=10m")
            out.setdefault(MAP_KEYS[key], {})[sub] = subval
        elif key in LIST_KEYS:
            out.setdefault(key, []).append(value)
        elif key in out:
            prev = out[key]
            out[key] = [*prev, _scalar(value)] if isinstance(prev, list) else [prev, _scalar(value)]
        else:
            out[key] = _scalar(value)
    return out


def daemon_config(engine: Mapping[str, Any], provider: str, *, tls_files: TLSFiles = TLSFiles()) -> dict[str, Any]:
    """daemon.json for `cfg.engine`. Transport "tls": unix socket + tcp://0.0.0.0:PORT with tlsverify.
    Transport "ssh": the unix socket only (no TCP port at all)."""
    transport = engine.get("transport", "tls")
    if transport not in ("tls", "ssh"):
        raise UsageError(f"Unknown engine transport {transport!r}", "Use tls or ssh.")
    port = int(engine.get("port") or 2376)
    conf: dict[str, Any] = engine_opts(engine.get("opts") or [])
    labels = [f"{k}={v}" for k, v in split_kv(engine.get("labels") or [], "--engine-label")]
    labels = [x for x in labels if not x.startswith("provider=")] + [f"provider={provider}"]
    conf["labels"] = labels
    if engine.get("insecure_registries"):
        conf["insecure-registries"] = list(engine["insecure_registries"])
    if engine.get("registry_mirrors"):
        conf["registry-mirrors"] = list(engine["registry_mirrors"])
    if engine.get("storage_driver"):
        conf["storage-driver"] = engine["storage_driver"]
    if transport == "tls":
        conf["hosts"] = [UNIX_SOCKET, f"tcp://0.0.0.0:{port}"]
        conf.update(tls=True, tlsverify=True, tlscacert=tls_files.ca, tlscert=tls_files.cert, tlskey=tls_files.key)
    else:
        conf["hosts"] = [UNIX_SOCKET]
    check_safe(conf)
    return conf


def check_safe(conf: Mapping[str, Any]) -> None:
    """Refuse a configuration that would open an unauthenticated TCP port."""
    hosts = conf.get("hosts") or []
    if isinstance(hosts, str):
        hosts = [hosts]
    tcp = [h for h in hosts if not str(h).startswith(("unix://", "fd://"))]
    if tcp and not (conf.get("tlsverify") is True and conf.get("tlscacert") and conf.get("tlscert")
                    and conf.get("tlskey")):
        raise UsageError(f"Refusing an engine configuration with TCP listener(s) {', '.join(map(str, tcp))} "
                         "without TLS client verification", "The engine's TCP port is always TLS-verified.")


def render_daemon_json(conf: Mapping[str, Any]) -> str:
    check_safe(conf)
    return json.dumps(conf, indent=2, sort_keys=True) + "\n"


def engine_env(engine: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, value in split_kv(engine.get("env") or [], "--engine-env"):
        if not _ENV_NAME.match(key):
            raise UsageError(f"--engine-env: {key!r} is not a valid variable name", "Use NAME=VALUE.")
        if "\n" in value or "\x00" in value:
            raise UsageError(f"--engine-env {key}: the value may not contain newlines", "Use one line.")
        env[key] = value
    return env


def exec_start(original: str, dockerd: str) -> str:
    """The drop-in's ExecStart: the packaged command line without `-H fd://` (which conflicts with
    `hosts` in daemon.json); `dockerd` alone when the packaged line is unknown."""
    line = original.strip()
    if not line:
        return dockerd
    line = _FD_HOST.sub("", " " + line).strip()
    return line or dockerd


def _template(name: str) -> Any:
    from machine import packagedata

    env = packagedata.templates("engine", filters={"systemd_quote": systemd_quote, "shquote": shlex.quote})
    return env.get_template(name)


def systemd_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def systemd_dropin(exec_line: str, env: Mapping[str, str]) -> str:
    """/etc/systemd/system/docker.service.d/10-machine.conf"""
    return _template("systemd-dropin.conf.j2").render(exec_start=exec_line, env=dict(env))


def openrc_conf(env: Mapping[str, str]) -> str:
    """The block machine manages in Alpine's /etc/conf.d/docker (sourced by the init script)."""
    return _template("openrc-conf.j2").render(env=dict(env))


def env_file(env: Mapping[str, str]) -> str:
    """/etc/docker/engine.env for the machine OS: KEY=VALUE lines (shell-quoted values)."""
    return _template("engine.env.j2").render(env=dict(env))


def systemd_unit(dockerd: str) -> str:
    """docker.service for an engine installed from a static archive (no packaged unit)."""
    return _template("docker.service.j2").render(dockerd=dockerd)


def openrc_init(dockerd: str) -> str:
    return _template("docker.openrc.j2").render(dockerd=dockerd)
