"""The machine's server certificate: which SANs it needs, issuing it, and whether it still covers the
machine's address. The SANs issued are recorded in `cfg.engine["cert_sans"]`, so the cheap check
(`covers`) reads no certificate and imports no crypto library."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

from machine import machinedir
from machine.store import MachineConfig, Store

CERT = machinedir.SERVER_CERT
KEY = machinedir.SERVER_KEY


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def wanted_sans(cfg: MachineConfig, extra: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(IP SANs, DNS SANs): 127.0.0.1, localhost, the machine name, every --tls-san, plus `extra`
    (addresses the driver reports after boot), kept in order without duplicates."""
    ips: list[str] = ["127.0.0.1"]
    dns: list[str] = ["localhost", cfg.name]
    for item in [*(cfg.engine.get("tls_sans") or []), *extra]:
        if not item:
            continue
        (ips if is_ip(item) else dns).append(str(item))
    return list(dict.fromkeys(ips)), list(dict.fromkeys(dns))


def recorded_sans(store: Store, cfg: MachineConfig) -> tuple[list[str], list[str]]:
    rec = cfg.engine.get("cert_sans")
    if isinstance(rec, dict):
        return list(rec.get("ips") or []), list(rec.get("dns") or [])
    cert = store.machine_dir(cfg.name) / CERT
    if not cert.exists():
        return [], []
    from machine.provision import certs

    return certs.server_cert_sans(cert)


def covers(store: Store, cfg: MachineConfig, host: str | None) -> bool:
    """Does the issued server certificate name `host`?"""
    if not host:
        return True
    ips, dns = recorded_sans(store, cfg)
    if is_ip(host):
        return str(ipaddress.ip_address(host)) in {str(ipaddress.ip_address(i)) for i in ips if is_ip(i)}
    return host.lower() in {d.lower() for d in dns}


def issue(store: Store, cfg: MachineConfig, extra: Iterable[str] = ()) -> tuple[Path, Path]:
    """Issue (or re-issue) server.pem / server-key.pem in the machine dir; returns their paths."""
    from machine.provision import certs

    ips, dns = wanted_sans(cfg, extra)
    mdir = store.machine_dir(cfg.name)
    cert, key = mdir / CERT, mdir / KEY
    certs.issue_server_cert(store.certs_dir, cert, key, name=cfg.name, ips=ips, dns=dns)
    cfg.engine["cert_sans"] = {"ips": ips, "dns": dns}
    return cert, key
