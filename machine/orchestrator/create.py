"""`create`: make, boot, provision and save a machine; on any failure (or Ctrl-C) remove what was made."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from machine import createmarker, registry, signals
from machine.driver import Driver, option_values
from machine.errors import MachineError, UsageError
from machine.names import validate_name
from machine.orchestrator.boot import BOOT_TIMEOUT, boot
from machine.orchestrator.hostagent import agent_down, agent_up
from machine.orchestrator.loading import check_available, driver_for
from machine.progress import Progress
from machine.shares import hostplan
from machine.store import MachineConfig, Store


@dataclass
class CreateRequest:
    name: str
    driver: str
    driver_flags: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    swarm: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # shared folders ({"host", "guest", "ro"}, validated by machine.shares.spec); `default_share` marks the
    # first one as the implicit home share, dropped with a note (not refused) when this host cannot share
    shares: list[dict[str, Any]] = field(default_factory=list)
    default_share: bool = False
    share_mechanism: str = "auto"  # validated by machine.shares.mechanisms.validate_choice
    boot_timeout: float = BOOT_TIMEOUT


def create(store: Store, req: CreateRequest, progress: Progress, debug: bool = False) -> MachineConfig:
    """Create, boot, provision and save a machine. On any failure (or Ctrl-C) everything made so
    far is removed again: a failed create leaves no half-made machine behind."""
    validate_name(req.name)
    cls = registry.get(req.driver)
    options = option_values(cls, req.driver_flags)
    with store.lock(req.name):
        if os.path.lexists(store.machine_dir(req.name)):
            hint = f"Pick another name, or remove it first: machine rm {req.name}"
            raise UsageError(f"Machine {req.name!r} already exists", hint)
        check_available(req.driver, options)
        shares = hostplan.keep_for_create(cls.name, cls.features.share_mechanisms, req.shares, req.default_share,
                                          progress.warn, req.share_mechanism)
        engine = {"transport": "tls", "port": 2376, **req.engine}
        secrets = {o.key for o in cls.options if o.secret}
        cfg = MachineConfig(name=req.name, driver=req.driver,
                            driver_options={k: v for k, v in options.items() if k not in secrets},
                            engine=engine, swarm=dict(req.swarm), labels=dict(req.labels), shares=shares,
                            share_mechanism=req.share_mechanism)
        driver: Driver | None = None
        try:
            # the marker goes first and leaves last: a create killed in between shows as broken, not healthy
            with signals.deferred():
                createmarker.begin(store.make_machine_dir(req.name))
            driver = driver_for(store, cfg, debug)
            driver.ctx.options.update({k: v for k, v in options.items() if k in secrets})
            if cls.features.seed or cls.features.managed_engine:
                from machine import provision

                with progress.step("Preparing keys, certificates and seed"):
                    provision.prepare(store, cfg, driver.ctx)
            with progress.step(f"Creating {req.driver} machine {req.name!r}"):
                store.save(cfg)  # before the VM exists, so 'machine rm' can find and remove what a kill leaves
                driver.create()
                store.save(cfg)
            for note in driver.notes():
                progress.warn(note)
            boot(store, cfg, driver, progress, req.boot_timeout)
            if cls.features.managed_engine:
                from machine import provision

                provision.provision(store, cfg, driver, progress)
            else:
                # the client certificates the docker client presents (DOCKER_CERT_PATH, `machine use`)
                from machine.provision import certs

                certs.copy_client_certs(store.certs_dir, store.machine_dir(req.name))
                cfg.engine["url"] = driver.url()
            store.save(cfg)
            agent_up(store, cfg, driver, progress)
            createmarker.finish(store.machine_dir(req.name))
        except BaseException as e:
            with signals.deferred():  # a second Ctrl-C or SIGTERM must not cut the undo short
                _undo_create(store, req.name, driver, progress, e)
            raise
    return cfg


def _undo_create(store: Store, name: str, driver: Driver | None, progress: Progress, error: BaseException) -> None:
    reason = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    progress.info(f"Create {reason}; removing what was made for {name!r}")
    agent_down(store.machine_dir(name))
    if driver is not None:
        try:
            driver.remove()
        except Exception as e:  # keep the original error; say what could not be undone
            progress.warn(f"could not remove the VM: {e}")
    try:
        store.remove(name)
    except MachineError as e:
        progress.warn(e.message)
