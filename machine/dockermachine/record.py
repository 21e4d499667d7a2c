"""Read a docker-machine machine record (`machines/NAME/config.json`, ConfigVersion 3) into our model.

The record is used as it is: nothing is written back (`MachineConfig.origin` marks it, and the store
does not save such configs). Drivers we have read the fields they need:

    docker-machine driver        our driver   what drives the VM
    none                         none         Driver.URL
    generic                      generic      Driver.IPAddress, SSHPort, SSHUser, SSHKeyPath, EnginePort
    virtualbox                   virtualbox   the VM named Driver.MachineName; NAT forward on Driver.SSHPort
    hyperv                       hyperv       the VM named Driver.MachineName (local PowerShell)
    kvm (docker-machine-kvm)     libvirt      the domain named Driver.MachineName on qemu:///system

Every other driver (amazonec2, digitalocean, vmwarefusion, the xhyve and hyperkit plugins, whose VM state
lives in files our hyperkit driver does not keep, ...) is listed with "driver X is not supported";
the commands that read only the store (env, config, url, inspect) still work on it from its fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine.errors import ConfigError, Unsupported

FORMAT = "docker-machine"
CONFIG_VERSION = 3
HEADER_KEYS = ("ConfigVersion", "Driver", "DriverName", "HostOptions", "Name")
ENGINE_PORT = 2376
KVM_URI = "qemu:///system"  # the docker-machine-kvm plugin's connection (not saved in its record)


class UnsupportedDriver(Unsupported):
    """A docker-machine machine whose driver machine cannot drive."""


def is_record(data: dict[str, Any]) -> bool:
    """Cheap format check on a parsed config: docker-machine's keys and none of ours."""
    return "schema_version" not in data and "ConfigVersion" in data


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def unsupported_message(name: str, driver_name: str) -> str:
    return (f"driver {driver_name} is not supported: {name!r} is a docker-machine machine that machine can list "
            "and point the docker client at (env, config, url, inspect), but not drive")


@dataclass
class Converted:
    """What a docker-machine driver's fields become in our model: our driver's name, options and data."""

    driver: str
    options: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    url: str | None = None  # None: tcp://IPAddress:engine_port
    engine_port: int = ENGINE_PORT


def _none(drv: dict[str, Any], name: str, key_path: str) -> Converted:
    url = str(drv.get("URL") or "")
    return Converted("none", {"url": url}, url=url)


def _generic(drv: dict[str, Any], name: str, key_path: str) -> Converted:
    port = _int(drv.get("EnginePort"), ENGINE_PORT)
    return Converted("generic", {"ip_address": str(drv.get("IPAddress") or ""), "ssh_user": _user(drv),
                                 "ssh_key": drv.get("SSHKey") or key_path, "ssh_port": _int(drv.get("SSHPort"), 22),
                                 "engine_port": port}, {"ssh_key": key_path}, engine_port=port)


def _virtualbox(drv: dict[str, Any], name: str, key_path: str) -> Converted:
    # VBoxManage takes the VM's name where we keep its UUID; docker-machine does not record which host-only
    # interface it used, so the lease lookup tries them all
    return Converted("virtualbox", {"cpus": _int(drv.get("CPU"), 1), "memory": _int(drv.get("Memory"), 1024),
                                    "disk_size": _int(drv.get("DiskSize"), 20000),
                                    "hostonly_cidr": drv.get("HostOnlyCIDR") or "192.168.99.1/24",
                                    "ui_type": drv.get("UIType") or "headless"},
                     {"uuid": drv.get("MachineName") or name, "ssh_port": _int(drv.get("SSHPort"), 22),
                      "hostonly": "*"})


def _hyperv(drv: dict[str, Any], name: str, key_path: str) -> Converted:
    return Converted("hyperv", {"memory": _int(drv.get("MemSize"), 1024), "cpus": _int(drv.get("CPU"), 1),
                                "disk_size": _int(drv.get("DiskSize"), 20000),
                                "virtual_switch": drv.get("VSwitch") or None,
                                "vlan_id": _int(drv.get("VLanID")) or None},
                     {"created": True})


def _kvm(drv: dict[str, Any], name: str, key_path: str) -> Converted:
    network = str(drv.get("Network") or "default")
    return Converted("libvirt", {"uri": KVM_URI, "cpus": _int(drv.get("CPU"), 1),
                                 "memory": _int(drv.get("Memory"), 1024),
                                 "disk_size": _int(drv.get("DiskSize"), 20000),
                                 "network": network},
                     {"domain": drv.get("MachineName") or name, "network": network, "ssh_user": _user(drv)})


# docker-machine's driver name -> how its fields become ours (the table at the top)
CONVERTERS: dict[str, Callable[[dict[str, Any], str, str], Converted]] = {
    "none": _none, "generic": _generic, "virtualbox": _virtualbox, "hyperv": _hyperv, "kvm": _kvm}


def _user(drv: dict[str, Any]) -> str:
    return str(drv.get("SSHUser") or "root")


def config_fields(data: dict[str, Any], name: str, source: Path) -> dict[str, Any]:
    """The MachineConfig fields for the record `data` read from `source` (machines/NAME/config.json); the store
    makes the MachineConfig (this module does not import the store: no import cycle)."""
    version = data.get("ConfigVersion")
    if version != CONFIG_VERSION:
        raise ConfigError(f"Config file {source} is a docker-machine record of ConfigVersion {version!r}; machine "
                          f"reads version {CONFIG_VERSION} (docker-machine 0.7 and later)",
                          "Run 'docker-machine ls' once: docker-machine migrates older records to version 3.")
    drv = _dict(data.get("Driver"))
    driver_name = str(data.get("DriverName") or "")
    if not driver_name:
        backup = source.with_name(source.name + ".bak")
        if _is_ours(backup):  # docker-machine "migrated" one of our configs written before they carried its keys
            raise ConfigError(f"Config file {source} was rewritten by docker-machine, which took machine's config "
                              f"for an old docker-machine one; machine's own is in {backup}",
                              f"Restore it: mv {backup} {source} (machine now writes configs docker-machine "
                              "leaves alone).")
        raise ConfigError(f"Config file {source} is a docker-machine record without a DriverName",
                          "The file is damaged: restore it, or remove the machine with 'machine rm -f'.")
    hopts = _dict(data.get("HostOptions"))
    eng = _dict(hopts.get("EngineOptions"))
    auth = _dict(hopts.get("AuthOptions"))
    ip = str(drv.get("IPAddress") or "")
    key_path = str(drv.get("SSHKeyPath") or "")
    mdir = source.parent
    if key_path and not Path(key_path).is_file() and (mdir / Path(key_path).name).is_file():
        key_path = str(mdir / Path(key_path).name)  # the store was moved: the key is the machine dir's copy
    convert = CONVERTERS.get(driver_name)
    conv = convert(drv, name, key_path) if convert else Converted(driver_name, {})
    url = conv.url if conv.url is not None else (f"tcp://{ip}:{conv.engine_port}" if ip else "")
    cfg: dict[str, Any] = {"name": name, "driver": conv.driver, "driver_options": conv.options,
                           "driver_data": conv.data}
    cfg["origin"] = {"format": FORMAT, "driver_name": driver_name, "supported": convert is not None,
                     "path": str(source)}
    cfg["docker_machine"] = {k: data[k] for k in HEADER_KEYS if k in data}
    engine_port = conv.engine_port
    cfg["engine"] = {"transport": "tls", "port": engine_port, "url": url,
                     "labels": [str(x) for x in _list(eng.get("Labels"))],
                     "insecure_registries": [str(x) for x in _list(eng.get("InsecureRegistry"))],
                     "registry_mirrors": [str(x) for x in _list(eng.get("RegistryMirror"))],
                     "storage_driver": str(eng.get("StorageDriver") or ""),
                     "env": [str(x) for x in _list(eng.get("Env"))],
                     "install_url": str(eng.get("InstallURL") or ""),
                     "tls_sans": [str(x) for x in _list(auth.get("ServerCertSANs"))]}
    cert_dir = _client_cert_dir(mdir, auth)
    if cert_dir is not None:
        cfg["engine"]["cert_dir"] = str(cert_dir)
    if conv.url is None and (drv.get("SSHUser") or key_path):  # a host reached over SSH (not none's URL)
        cfg["ssh"] = {"user": _user(drv), "port": _int(drv.get("SSHPort"), 22)}
        if ip:
            cfg["ssh"]["host"] = ip
        if key_path:
            cfg["ssh"]["key"] = key_path  # absolute: the machine dir / key joins to it
    # docker-machine's SwarmOptions are classic Swarm (a discovery URL, agents): not one of our swarm-mode
    # clusters, so they stay in the record (inspect shows them) and cfg.swarm stays empty
    return cfg


def _is_ours(path: Path) -> bool:
    try:
        return "schema_version" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _client_cert_dir(machine_dir: Path, auth: dict[str, Any]) -> Path | None:
    """Where ca.pem, cert.pem and key.pem are for the docker client: None for the machine dir (where
    docker-machine copies them), else the directory of AuthOptions' client certificate (the none driver
    gets no copies)."""
    if all((machine_dir / f).is_file() for f in ("ca.pem", "cert.pem", "key.pem")):
        return None
    client = auth.get("ClientCertPath") or ""
    if client and Path(client).parent.is_dir():
        return Path(client).parent
    cert_dir = auth.get("CertDir") or ""
    return Path(cert_dir) if cert_dir else None
