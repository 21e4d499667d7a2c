"""Where the docker client finds a machine's engine (`env`, `config`, `use`): its URL and, for TLS, the folder
with the client certificates; told from the store alone. Only when the machine's address left its server
certificate does the slow path run (the orchestrator renews the certificate), so these commands import no
driver, SSH or crypto library otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from machine.errors import InvalidState
from machine.progress import Progress
from machine.store import MachineConfig, Store


def engine_url_for(store: Store, cfg: MachineConfig, progress: Progress, debug: bool = False) -> str:
    """The URL the docker client uses for `cfg`'s engine: the one place `env`, `config` and `use`
    get it from (checks of the server certificate against this URL belong here).

    TLS transport: the saved engine URL (tcp://IP:PORT). SSH transport: ssh://USER@HOST:PORT, the
    saved URL when it is one, else built from the saved SSH endpoint."""
    url = str(cfg.engine.get("url") or "")
    if cfg.engine.get("transport") == "ssh" and urlsplit(url).scheme != "ssh":
        host, port, user = cfg.ssh.get("host"), cfg.ssh.get("port"), cfg.ssh.get("user")
        if not host:
            raise InvalidState(f"Machine {cfg.name!r} uses the SSH engine transport but has no SSH address saved",
                               f"It may not have finished provisioning: machine provision {cfg.name}")
        url = f"ssh://{user + '@' if user else ''}{host}{f':{port}' if port else ''}"
    if not url:
        raise InvalidState(f"Machine {cfg.name!r} has no engine URL yet",
                           f"It may not have finished provisioning: machine provision {cfg.name}")
    if cfg.managed_engine and not cfg.origin:  # machine issued its certificate (a docker-machine record: its own)
        from machine import provision

        warning = provision.check_certs(store, cfg)  # cheap: no SSH, no crypto
        if warning:  # the rare slow path: the address left the server certificate; renew it if it runs
            from machine import orchestrator

            if orchestrator.renew_certificate(store, cfg.name, progress, debug):
                cfg = store.load(cfg.name)
                url = str(cfg.engine.get("url") or url)
                warning = provision.check_certs(store, cfg)
        if warning:
            progress.warn(warning)
        if cfg.engine.get("transport") == "ssh":
            progress.info(provision.ssh_transport_hint(store, cfg))
    return url


@dataclass(frozen=True)
class ClientTarget:
    """What the docker client needs: the engine URL and, for TLS, the directory holding
    ca.pem, cert.pem and key.pem (the machine directory, as DOCKER_CERT_PATH)."""

    name: str
    url: str
    cert_dir: Path | None
    driver: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def client_target(store: Store, name: str, progress: Progress, debug: bool = False) -> ClientTarget:
    """Machine `name`'s engine as `env`, `config` and `use` hand it to the docker client, read under the machine's
    lock (so an `rm` running at the same time either finishes first, and this says there is no such machine, or
    waits). A machine that is not running is refused, told from the store alone (machine.cheapstate)."""
    from machine.cheapstate import require_running

    with store.lock(name):
        cfg = store.load(name)
        require_running(store, cfg)
        url = engine_url_for(store, cfg, progress, debug)
        tls = cfg.engine.get("transport", "tls") != "ssh" and urlsplit(url).scheme in ("tcp", "https")
        # a docker-machine record whose machine dir holds no client certificates names where they are
        cert_dir = Path(cfg.engine["cert_dir"]) if cfg.engine.get("cert_dir") else store.machine_dir(cfg.name)
        return ClientTarget(cfg.name, url, cert_dir if tls else None, cfg.driver)
