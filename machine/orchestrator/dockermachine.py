"""docker-machine's records in our store: `machine import` (and --undo) and pinning the host key of a machine
docker-machine made (it pins none). The conversion itself is machine.dockermachine's."""

from __future__ import annotations

from machine.orchestrator.loading import driver_for
from machine.progress import Progress
from machine.store import MachineConfig, Store


def import_docker_machine(store: Store, name: str, progress: Progress) -> MachineConfig:
    """Convert docker-machine's record of `name` into our config (`machine import`); the original is kept
    beside it (machine.dockermachine.importing)."""
    from machine.atomicfile import write_atomic
    from machine.dockermachine import importing

    with store.lock(name):
        cfg = importing.importable(store.load(name))
        backup = importing.backup_path(store, name)
        original = store.config_path(name).read_bytes()
        cfg, warnings = importing.converted(store, cfg)
        write_atomic(backup, original)
        store.save(cfg)
        store.host_key_path(name).unlink(missing_ok=True)  # the pin is in our config now
    for warning in warnings:
        progress.warn(warning)
    return cfg


def pin_host_key(store: Store, name: str, progress: Progress, debug: bool = False) -> MachineConfig:
    """Learn and pin the SSH host key of a machine docker-machine made (it pins none); returns the config."""
    from machine.provision.remote import open_session

    with store.lock(name):
        cfg = store.load(name)
        if not cfg.ssh.get("host_key"):
            with open_session(store, cfg, driver_for(store, cfg, debug), progress, timeout=30):
                pass
            store.save(cfg)
    return cfg


def undo_docker_machine_import(store: Store, name: str) -> None:
    """Give an imported machine back to docker-machine: its original config.json (`machine import --undo`)."""
    from machine.dockermachine import importing

    with store.lock(name):
        cfg = store.load(name)
        importing.restore(store, name)
        key = str(cfg.ssh.get("host_key") or "")
        if key:  # keep the pin we learnt, outside docker-machine's folder
            restored = store.load(name)
            restored.ssh["host_key"] = key
            store.save(restored)
