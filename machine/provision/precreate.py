"""Before the driver creates the VM: keys, the pinned host key, certificates and the NoCloud seed.

For our machine OS the seed carries the engine's complete configuration (daemon.json, CA, server
certificate and key) and, last, the marker `/etc/docker/machine-ready`: the engine starts once at
boot, with TLS, and no restart is needed. For a cloud image (stock cloud-init) the seed only sets up
login and the host key; the engine is installed over SSH afterwards.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from machine import machinedir
from machine.driver import DriverContext
from machine.provision import certs, engineconfig, keys
from machine.provision.seediso import SeedFile, build_seed
from machine.store import MachineConfig, Store

log = logging.getLogger("machine.provision")

LOGIN_KEY = machinedir.LOGIN_KEY
MARKER = "/etc/docker/machine-ready"
ENGINE_ENV = "/etc/docker/engine.env"
MACHINE_OS = "machine-os"
DEFAULT_PORT = 2376


def image_facts(ctx: DriverContext) -> tuple[str | None, str | None]:
    """(ssh_user, seed kind) for the machine's image: what the driver recorded (`ssh_user`,
    `seed_kind`), else the image catalogue entry of its `image` option. None when unknown."""
    user, kind = ctx.data.get("ssh_user"), ctx.data.get("seed_kind")
    spec = ctx.options.get("image")
    if (user is None or kind is None) and spec:
        try:
            from machine.images import catalogue

            img = catalogue.resolve(str(spec))
            user, kind = user or img.ssh_user, kind or img.seed
        except Exception as e:  # the driver reports a bad image itself, with its own hint
            log.debug("image %r not resolved here: %s", spec, e)
    return user, kind


def engine_files(cfg: MachineConfig, machine_dir: Any) -> list[SeedFile]:
    """What our machine OS needs in /etc/docker to start the engine at boot, the marker last."""
    conf = engineconfig.daemon_config(cfg.engine, cfg.driver)
    files = [SeedFile("/etc/docker/daemon.json", engineconfig.render_daemon_json(conf), "0644")]
    if cfg.engine.get("transport", "tls") == "tls":
        files += [
            SeedFile("/etc/docker/ca.pem", (machine_dir / machinedir.CA_CERT).read_bytes(), "0644"),
            SeedFile("/etc/docker/server.pem", (machine_dir / machinedir.SERVER_CERT).read_bytes(), "0644"),
            SeedFile("/etc/docker/server-key.pem", (machine_dir / machinedir.SERVER_KEY).read_bytes(), "0600"),
        ]
    env = engineconfig.engine_env(cfg.engine)
    if env:
        files.append(SeedFile(ENGINE_ENV, engineconfig.env_file(env), "0644"))
    files.append(SeedFile(MARKER, "", "0644"))
    return files


def cluster_network(cfg: MachineConfig) -> dict[str, Any] | None:
    """network-config (v2) for a Swarm node's second NIC: its static cluster address, matched by MAC.
    None for machines outside a cluster (the first NIC uses DHCP either way)."""
    swarm = cfg.swarm or {}
    if not (swarm.get("mac") and swarm.get("address")):
        return None
    nic = {"match": {"macaddress": swarm["mac"]}, "addresses": [f"{swarm['address']}/{swarm.get('prefix', 24)}"]}
    return {"version": 2, "ethernets": {"c0": nic}}


def share_entries(cfg: MachineConfig) -> list[dict[str, Any]]:
    """The shared folders our machine OS mounts at boot (seed key machine_shares)."""
    from machine.shares import spec

    return spec.guest_entries(spec.from_config(cfg.shares))


def update_shares(cfg: MachineConfig, machine_dir: Any) -> None:
    """After `machine set` changed the shares: the machine OS seed lists the new ones (other guests mount
    them over SSH after each start)."""
    from machine.provision.seediso import replace_shares

    seed = machine_dir / "seed.iso"
    if cfg.ssh.get("seed_kind", MACHINE_OS) == MACHINE_OS and seed.exists():
        replace_shares(seed, share_entries(cfg))


def prepare(store: Store, cfg: MachineConfig, ctx: DriverContext) -> None:
    from machine import registry

    cls = registry.get(cfg.driver)
    mdir = ctx.machine_dir
    # a port the driver's options state (an existing host's engine) beats the default --engine-port;
    # an explicit --engine-port beats the option's default
    driver_port = cls.stated_engine_port(ctx.options) or DEFAULT_PORT
    if driver_port != DEFAULT_PORT or not cfg.engine.get("port"):
        cfg.engine["port"] = driver_port
    ctx.engine_port = int(cfg.engine.get("port") or DEFAULT_PORT)
    engineconfig.daemon_config(cfg.engine, cfg.driver)  # bad --engine-opt etc. fail before anything is made
    engineconfig.engine_env(cfg.engine)
    user, kind = image_facts(ctx)
    cfg.ssh["user"] = cls.stated_ssh_user(ctx.options) or user or "root"
    certs.copy_client_certs(store.certs_dir, mdir)
    certs.issue_machine_cert(store, cfg)
    if not cls.features.seed:
        # an existing host (generic): its key is the user's, copied by the driver; no seed, no pin yet
        return
    login_pub = keys.ensure_login_key(mdir / LOGIN_KEY, f"machine@{cfg.name}")
    cfg.ssh["key"] = LOGIN_KEY
    host = keys.new_ed25519(f"root@{cfg.name}")
    cfg.ssh["host_key"] = " ".join(host.public.split()[:2])
    kind = kind or MACHINE_OS
    files = engine_files(cfg, mdir) if kind == MACHINE_OS else []
    seed = build_seed(
        mdir / machinedir.SEED,
        instance_id=f"{cfg.name}-{uuid.uuid4().hex[:8]}",
        hostname=cfg.name,
        authorized_keys=[login_pub],
        files=files,
        host_keys={"ed25519_private": host.private, "ed25519_public": host.public},
        network_config=cluster_network(cfg),
        user=cfg.ssh["user"],
        shares=share_entries(cfg) if kind == MACHINE_OS else (),
    )
    cfg.ssh["seed_kind"] = kind
    cfg.engine["configured_by_seed"] = kind == MACHINE_OS
    ctx.seed_path = seed
