"""A machine's driver object, built from its saved config, and the locked load -> drive -> save sequence
every command that changes a machine goes through."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from machine import machinedir, registry
from machine.driver import Driver, DriverContext, State, option_values
from machine.errors import ConfigError, HostNotUsable, InvalidState, UsageError
from machine.shares import hostplan
from machine.store import MachineConfig, Store


def driver_for(store: Store, cfg: MachineConfig, debug: bool = False) -> Driver:
    if cfg.origin and not cfg.origin.get("supported", True):
        from machine.dockermachine.record import UnsupportedDriver, unsupported_message

        raise UnsupportedDriver(unsupported_message(cfg.name, cfg.origin.get("driver_name", cfg.driver)),
                                "Keep managing it with docker-machine; 'machine rm' removes only its record.")
    cls = registry.get(cfg.driver)
    options = dict(cfg.driver_options)
    # secret options (passwords) are never saved: they come from the environment on every command
    unsaved = {o.key for o in cls.options if o.secret and o.key not in options}
    if unsaved:
        options.update({k: v for k, v in option_values(cls, {}).items() if k in unsaved})
    ctx = DriverContext(
        name=cfg.name,
        machine_dir=store.machine_dir(cfg.name),
        options=options,
        data=cfg.driver_data,
        cache_dir=store.cache_dir,
        engine_port=int(cfg.engine.get("port", 2376)),
        cluster_nic=dict(cfg.swarm) if cfg.swarm.get("mac") else None,
        shares=hostplan.device_entries(cfg.shares),
        share_mechanism=cfg.share_mechanism,
        debug=debug,
    )
    seed = ctx.machine_dir / machinedir.SEED
    ctx.seed_path = seed if seed.exists() else None
    return cls(ctx)


def check_saved_options(cfg: MachineConfig) -> None:
    """Before a start: a damaged or hand-edited config must not hand -1 CPUs to a hypervisor."""
    cls = registry.get(cfg.driver)
    for opt in cls.options:
        try:
            opt.check(cls.name, cfg.driver_options.get(opt.key))
        except UsageError as e:
            raise ConfigError(f"Config of {cfg.name!r}: {e.message}",
                              f"Fix it with 'machine set {cfg.name} {opt.flag(cls.name)} VALUE', or remove the "
                              f"machine with 'machine rm {cfg.name}'.") from None


def check_available(driver_name: str, options: dict[str, Any] | None = None) -> None:
    cls = registry.get(driver_name)
    try:
        verdict = cls.check_available(options or {})
    except Exception as e:  # an availability check must answer, not raise; report it as unusable
        raise HostNotUsable(f"Driver {driver_name!r} availability check failed: {e}",
                            "Run 'machine doctor' for details.") from e
    if not verdict.ok:
        raise HostNotUsable(verdict.message or f"Driver {driver_name!r} cannot run on this host", verdict.hint)


def require_running(driver: Driver, name: str) -> None:
    state = driver.status()
    if state != State.RUNNING:
        raise InvalidState(f"Machine {name!r} is not running (state: {state})", f"Start it: machine start {name}")


def require_own(cfg: MachineConfig, what: str) -> None:
    """Refuse to rewrite the files of a docker-machine record: `machine import` takes it over first."""
    if cfg.origin:
        raise InvalidState(f"Machine {cfg.name!r} is docker-machine's: machine does not {what} until it is "
                           "imported (its files are left as docker-machine wrote them)",
                           f"Import it first: machine import {cfg.name} (reversible: machine import --undo "
                           f"{cfg.name}), or use docker-machine.")


@contextmanager
def locked(store: Store, name: str, debug: bool = False, check: Callable[[MachineConfig], None] | None = None,
           ) -> Iterator[tuple[MachineConfig, Driver]]:
    """Under the machine's lock: its config (passed to `check` first, which may refuse) and driver. The config
    is saved afterwards, also after a failure (a host key learned or a certificate issued must not be lost)."""
    with store.lock(name):
        cfg = store.load(name)
        if check is not None:
            check(cfg)
        driver = driver_for(store, cfg, debug)
        try:
            yield cfg, driver
        finally:
            store.save(cfg)
