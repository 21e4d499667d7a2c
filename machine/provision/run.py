"""Provisioning flows over SSH: provision after create, certificate refresh after start,
regenerate-certs, upgrade, and asking an engine its version."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from machine.errors import InvalidState, ProvisionError
from machine.progress import Progress
from machine.provision import certs, osdetect, sshclient, tlscheck
from machine.provision.provisioners import PROVISIONERS, Provisioner
from machine.provision.remote import Remote, open_session
from machine.store import MachineConfig, Store

if TYPE_CHECKING:
    from machine.driver import Driver
    from machine.provision.ssh import Session

log = logging.getLogger("machine.provision")
ENGINE_TIMEOUT = 300.0  # as BOOT_TIMEOUT: under TCG at load 13-15 a restart took 118-171 s to SSH, then > 180 s to TLS


def _detect(remote: Remote, store: Store, cfg: MachineConfig) -> Provisioner:
    if remote.exists("/etc/machine-os-release"):  # our OS is built from Debian: its os-release says debian
        cfg.ssh["os"] = "machine-os"
        return PROVISIONERS["machine-os"](remote, store, cfg)
    text = remote.read("/etc/os-release") or remote.read("/usr/lib/os-release")
    if text is None:
        raise ProvisionError(f"Machine {cfg.name!r} has no /etc/os-release: cannot tell which OS it runs",
                             "Supported: the machine OS, Debian, Ubuntu, Fedora, RHEL-family and Alpine.")
    info = osdetect.parse_os_release(text)
    family = osdetect.require_supported(info, cfg.name)
    cfg.ssh["os"] = family
    return PROVISIONERS[family](remote, store, cfg)


def _connect(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> Remote:
    with progress.step(f"Connecting to {cfg.name!r} over SSH"):
        return Remote(open_session(store, cfg, driver, progress))


def engine_target(cfg: MachineConfig, driver: Driver) -> tuple[str, int]:
    port = int(cfg.engine.get("port") or 2376)
    addr = driver.engine_address(port)
    if not addr:
        raise InvalidState(f"The driver cannot tell where the engine of {cfg.name!r} listens (is it running?)",
                           f"Start it: machine start {cfg.name}")
    return addr[0], int(addr[1])


def _ssh_url(cfg: MachineConfig, session: Session) -> str:
    t = session.target
    return f"ssh://{t.user}@{t.host}:{t.port}"


def wait_engine(store: Store, cfg: MachineConfig, driver: Driver, remote: Remote, progress: Progress) -> str:
    """Wait until the engine answers the way the docker client will reach it; set cfg.engine["url"]."""
    with progress.step("Waiting for the Docker engine"):
        if cfg.engine.get("transport", "tls") == "ssh":
            version = _version_over_ssh(remote.session, ENGINE_TIMEOUT)
            cfg.engine["url"] = _ssh_url(cfg, remote.session)
        else:
            host, port = engine_target(cfg, driver)
            info = tlscheck.wait_version(host, port, store.machine_dir(cfg.name), ENGINE_TIMEOUT)
            version = str(info.get("Version", "unknown"))
            cfg.engine["url"] = f"tcp://{host}:{port}"
    return version


def _version_over_ssh(session: Session, timeout: float) -> str:
    import time

    deadline = time.monotonic() + timeout
    while True:
        res = session.run("docker version --format '{{.Server.Version}}'", check=False)
        if res.ok and res.stdout.strip():
            return res.stdout.strip()
        if time.monotonic() >= deadline:
            raise ProvisionError(f"The Docker engine did not answer on the machine within {timeout:.0f} s: "
                                 f"{res.stderr.strip()[-300:]}", "Look at the engine's log on the machine.")
        time.sleep(1.0)


def provision(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> None:
    """After SSH answers: detect the OS, install and configure the engine, check it from the host."""
    remote = _connect(store, cfg, driver, progress)
    try:
        with progress.step("Detecting the operating system"):
            prov = _detect(remote, store, cfg)
        _mount_shares(cfg, driver, remote, progress)
        reissued = cfg.engine.get("transport", "tls") == "tls" and _cover_addresses(store, cfg, driver)
        if not prov.engine_installed():
            with progress.step(f"Installing the Docker engine ({prov.family})"):
                prov.install()
        with progress.step("Configuring the Docker engine"):
            uploaded = prov.configure()
            if reissued and not uploaded:  # the seed's certificate lacks the address: replace it
                prov.put_tls_files()
                prov.restart_engine()
        version = wait_engine(store, cfg, driver, remote, progress)
    finally:
        remote.session.close()
    for warning in prov.warnings:
        progress.warn(warning)
    progress.info(f"Docker is up and running! (engine {version} at {cfg.engine['url']})")
    if cfg.engine.get("transport") == "ssh":
        progress.info(sshclient.ssh_transport_hint(store, cfg))


def _mount_shares(cfg: MachineConfig, driver: Driver, remote: Remote, progress: Progress) -> None:
    """Guests other than our machine OS (which mounts them from its seed) get their shares over SSH."""
    if cfg.ssh.get("os") == "machine-os" or not (driver.ctx.shares or cfg.ssh.get("shares_mounted")):
        return
    from machine.provision import sharemounts

    mechanism = driver.data.get("share_mechanism") or next(iter(driver.features.share_mechanisms), None)
    with progress.step("Mounting shared folders"):
        cfg.share_errors = sharemounts.apply(remote, driver.ctx.shares, mechanism)
    cfg.ssh["shares_mounted"] = bool(driver.ctx.shares)
    for err in cfg.share_errors:
        progress.warn(f"{err} (the machine runs without it)")


def _cover_addresses(store: Store, cfg: MachineConfig, driver: Driver) -> bool:
    """Re-issue the server certificate locally when the driver's addresses are not in it yet.
    Returns True when it was re-issued (the machine then needs the new files)."""
    hosts = [h for h in (driver.ip(), engine_target(cfg, driver)[0]) if h]
    missing = [h for h in dict.fromkeys(hosts) if not certs.covers(store, cfg, h)]
    if not missing:
        return False
    extra = [*_extra_sans(cfg), *missing]
    certs.issue_machine_cert(store, cfg, extra)
    cfg.engine["cert_extra_sans"] = extra
    return True


def _extra_sans(cfg: MachineConfig) -> list[str]:
    return list(cfg.engine.get("cert_extra_sans") or [])


def after_start(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> None:
    """After a start: when the machine's address is not in its server certificate any more, re-issue
    and re-upload it (restarting the engine); update the URL when the forwarded address changed;
    wait until the engine answers, so `start` ends with a usable engine."""
    if cfg.engine.get("transport", "tls") == "ssh":
        ep = driver.ssh_endpoint()
        if ep:
            new = f"ssh://{cfg.ssh.get('user') or ep.user}@{ep.host}:{ep.port}"
            _note_url(cfg, new, progress)
        return
    if cfg.ssh.get("os") not in (None, "machine-os") and (driver.ctx.shares or cfg.ssh.get("shares_mounted")):
        remote = Remote(open_session(store, cfg, driver, progress))
        try:
            _mount_shares(cfg, driver, remote, progress)
        finally:
            remote.session.close()
    if _cover_addresses(store, cfg, driver):
        with progress.step("Re-issuing the server certificate for the machine's new address"):
            remote = Remote(open_session(store, cfg, driver, progress))
            try:
                prov = _detect(remote, store, cfg)
                prov.put_tls_files()
                prov.restart_engine()
            finally:
                remote.session.close()
        progress.info(f"The address of {cfg.name!r} changed; its server certificate was re-issued.")
    host, port = engine_target(cfg, driver)
    _note_url(cfg, f"tcp://{host}:{port}", progress)
    with progress.step("Waiting for the Docker engine"):
        tlscheck.wait_version(host, port, store.machine_dir(cfg.name), ENGINE_TIMEOUT)


def _note_url(cfg: MachineConfig, new: str, progress: Progress) -> None:
    old = cfg.engine.get("url")
    if old and old != new:
        progress.info(f"The engine URL of {cfg.name!r} changed from {old} to {new}; "
                      f"refresh your shell: eval $(machine env {cfg.name})")
    cfg.engine["url"] = new


def new_ca(store: Store, progress: Progress) -> None:
    """Replace the CA and the client certificate (`regenerate-certs --client-certs`)."""
    with progress.step("Making a new CA and client certificate"):
        paths = certs.cert_paths(store.certs_dir)
        for p in (paths.ca, paths.ca_key, paths.cert, paths.key):
            p.unlink(missing_ok=True)
        certs.ensure_ca(store.certs_dir)


def regenerate(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> None:
    """Issue a new server certificate (signed by the current CA, whose client certificate is copied
    into the machine dir), upload it and restart the engine. The pinned host key is checked as
    always: a changed key fails, it is never accepted silently."""
    certs.copy_client_certs(store.certs_dir, store.machine_dir(cfg.name))
    remote = _connect(store, cfg, driver, progress)
    try:
        with progress.step("Issuing and installing a new server certificate"):
            prov = _detect(remote, store, cfg)
            hosts = [h for h in (driver.ip(), engine_target(cfg, driver)[0]) if h]
            extra = list(dict.fromkeys([*_extra_sans(cfg), *hosts]))
            certs.issue_machine_cert(store, cfg, extra)
            cfg.engine["cert_extra_sans"] = extra
            if cfg.engine.get("transport", "tls") == "tls":
                prov.put_tls_files()
                prov.restart_engine()
        version = wait_engine(store, cfg, driver, remote, progress)
    finally:
        remote.session.close()
    progress.info(f"Docker is up and running! (engine {version} at {cfg.engine['url']})")


def upgrade(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> None:
    remote = _connect(store, cfg, driver, progress)
    try:
        prov = _detect(remote, store, cfg)
        with progress.step(f"Upgrading the Docker engine ({prov.family})"):
            prov.upgrade()
        version = wait_engine(store, cfg, driver, remote, progress)
    finally:
        remote.session.close()
    progress.info(f"Docker engine {version} is running on {cfg.name!r}.")


def engine_version(store: Store, cfg: MachineConfig, driver: Driver) -> str:
    """The engine version of a running machine, asked over TLS (or over SSH for the ssh transport)."""
    if cfg.engine.get("transport", "tls") == "ssh":
        with open_session(store, cfg, driver, timeout=30) as session:
            return _version_over_ssh(session, 10)
    host, port = engine_target(cfg, driver)
    try:
        return str(tlscheck.get_version(host, port, store.machine_dir(cfg.name)).get("Version", "unknown"))
    except OSError as e:
        raise ProvisionError(f"Cannot reach the Docker engine of {cfg.name!r} at {host}:{port}: {e}",
                             f"Check it: machine status {cfg.name}; machine regenerate-certs {cfg.name}") from None


def engine_version_quick(store: Store, cfg: MachineConfig, timeout: float = 2.0) -> str:
    """The engine version for `ls`: one TLS request with a short timeout. "Unknown" for an engine not asked over
    TLS; OSError saying why (refused, EOF, TLS error, no client certificate) when it does not answer, TimeoutError
    (an OSError too) when it answered nothing within `timeout`."""
    target = tlscheck.split_url(cfg.engine.get("url", ""))
    if cfg.engine.get("transport", "tls") != "tls" or not target:
        return "Unknown"
    from http.client import HTTPException  # here: env/config do not load http.client

    cert_dir = Path(cfg.engine["cert_dir"]) if cfg.engine.get("cert_dir") else store.machine_dir(cfg.name)
    try:  # ls shows the version as Unknown and says why in ERRORS (docker-machine's "Unable to query docker version")
        version = tlscheck.get_version(target[0], target[1], cert_dir, timeout=timeout)
    except (OSError, ValueError, HTTPException) as e:
        log.debug("engine version of %s: %r", cfg.name, e)
        why = tlscheck.why_not(e, target, timeout, cert_dir)
        raise (TimeoutError(why) if isinstance(e, TimeoutError) else OSError(why)) from None
    return "v" + str(version.get("Version", "Unknown")).lstrip("v")
