"""docker-machine's view of a machine: the `Driver` and `HostOptions` fields its `inspect` prints, so
`inspect -f '{{.Driver.IPAddress}}'` and friends from docker-machine scripts work on our machines as on
theirs. Built from the store only (no driver import): values are the last ones saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from machine import machinedir
from machine.dockermachine.record import CONFIG_VERSION

if TYPE_CHECKING:
    from machine.store import MachineConfig, Store

REMOTE_DIR = "/etc/docker"
# docker-machine's own drivers that work from the fields we write for our machines of the same name (the others
# are written as "machine-<driver>", which docker-machine lists as a driver it does not have)
DOCKER_MACHINE_READS = frozenset({"none", "generic"})


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def driver_fields(store: Store, cfg: MachineConfig) -> dict[str, Any]:
    """docker-machine's BaseDriver fields (plus URL, and generic's EnginePort/SSHKey) for one of our machines."""
    url = str(cfg.engine.get("url") or "")
    opts, data = cfg.driver_options, cfg.driver_data
    ip = _host_of(url) or str(cfg.ssh.get("host") or opts.get("ip_address") or "")
    uses_ssh = cfg.managed_engine
    key = cfg.ssh.get("key") or data.get("ssh_key") or machinedir.LOGIN_KEY
    fields: dict[str, Any] = {
        "IPAddress": ip,
        "MachineName": cfg.name,
        "SSHUser": str(cfg.ssh.get("user") or opts.get("ssh_user") or "root") if uses_ssh else "",
        "SSHPort": int(cfg.ssh.get("port") or data.get("ssh_port") or opts.get("ssh_port") or 22) if uses_ssh else 0,
        "SSHKeyPath": str(store.machine_dir(cfg.name) / str(key)) if uses_ssh else "",
        "StorePath": str(store.root),
        "SwarmMaster": cfg.swarm.get("role") == "manager",
        "SwarmHost": "",
        "SwarmDiscovery": "",
        "URL": url,
    }
    if "engine_port" in opts:  # an existing host (generic): docker-machine keeps its engine port and key
        fields["EnginePort"] = int(opts.get("engine_port") or cfg.engine.get("port") or 2376)
        fields["SSHKey"] = str(opts.get("ssh_key") or "")
    return fields


def host_options(store: Store, cfg: MachineConfig) -> dict[str, Any]:
    """docker-machine's HostOptions (EngineOptions, SwarmOptions, AuthOptions) for one of our machines."""
    eng, certs, mdir = cfg.engine, store.certs_dir, store.machine_dir(cfg.name)
    labels = eng.get("labels") or []
    if isinstance(labels, dict):
        labels = [f"{k}={v}" for k, v in labels.items()]
    opts = eng.get("opts") or []
    if isinstance(opts, dict):
        opts = [f"{k}={v}" for k, v in opts.items()]
    cluster = str(cfg.swarm.get("cluster") or "")
    return {
        "Driver": "",
        "Memory": int(cfg.driver_options.get("memory") or 0),
        "Disk": int(cfg.driver_options.get("disk_size") or 0),
        "EngineOptions": {
            "ArbitraryFlags": list(opts), "Dns": None, "GraphDir": "", "Env": list(eng.get("env") or []),
            "Ipv6": False, "InsecureRegistry": list(eng.get("insecure_registries") or []), "Labels": list(labels),
            "LogLevel": "", "StorageDriver": str(eng.get("storage_driver") or ""), "SelinuxEnabled": False,
            "TlsVerify": eng.get("transport", "tls") == "tls",
            "RegistryMirror": list(eng.get("registry_mirrors") or []),
            "InstallURL": str(eng.get("install_url") or ""),
        },
        "SwarmOptions": {
            "IsSwarm": bool(cluster), "Address": str(cfg.swarm.get("address") or ""), "Discovery": "",
            "Agent": bool(cluster), "Master": cfg.swarm.get("role") == "manager", "Host": "", "Image": "",
            "Strategy": "", "Heartbeat": 0, "Overcommit": 0, "ArbitraryFlags": [], "ArbitraryJoinFlags": [],
            "Env": None, "IsExperimental": False,
        },
        "AuthOptions": {
            "CertDir": str(certs), "CaCertPath": str(certs / machinedir.CA_CERT),
            "CaPrivateKeyPath": str(certs / "ca-key.pem"),
            "CaCertRemotePath": f"{REMOTE_DIR}/ca.pem", "ServerCertPath": str(mdir / machinedir.SERVER_CERT),
            "ServerKeyPath": str(mdir / machinedir.SERVER_KEY), "ClientKeyPath": str(certs / machinedir.CLIENT_KEY),
            "ServerCertRemotePath": f"{REMOTE_DIR}/server.pem", "ServerKeyRemotePath": f"{REMOTE_DIR}/server-key.pem",
            "ClientCertPath": str(certs / machinedir.CLIENT_CERT), "ServerCertSANs": list(eng.get("tls_sans") or []),
            "StorePath": str(mdir),
        },
    }


def generated(store: Store, cfg: MachineConfig) -> dict[str, Any]:
    """The docker-machine keys written into one of our own config files (see machine.dockermachine.header)."""
    return {
        "ConfigVersion": CONFIG_VERSION,
        "Driver": driver_fields(store, cfg),
        "DriverName": cfg.driver if cfg.driver in DOCKER_MACHINE_READS else f"machine-{cfg.driver}",
        "HostOptions": host_options(store, cfg),
        "Name": cfg.name,
    }


def fields(store: Store, cfg: MachineConfig) -> dict[str, Any]:
    """ConfigVersion, Driver, DriverName, HostOptions as docker-machine's inspect shows them: a docker-machine
    record's (or an imported machine's) own, with URL and missing base fields filled in; ours generated."""
    if not (cfg.origin or cfg.imported_from) or not cfg.docker_machine:
        return generated(store, cfg)
    own = dict(cfg.docker_machine)
    base = driver_fields(store, cfg)
    driver = dict(own.get("Driver") or {}) if isinstance(own.get("Driver"), dict) else {}
    for key, value in base.items():
        driver.setdefault(key, value)
    own["Driver"] = driver
    own.setdefault("HostOptions", host_options(store, cfg))
    own.setdefault("ConfigVersion", CONFIG_VERSION)
    own["DriverName"] = str(own.get("DriverName") or cfg.driver)
    return own
