"""The one orchestration layer (as podman machine's shim/host.go): it creates, starts, stops and
removes machines through drivers, waits for them, provisions them and saves their config.
Drivers never wait, provision or save; commands never talk to drivers directly.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from machine import createmarker, machinedir, registry, signals, waiting
from machine.driver import Driver, DriverContext, State, option_values, settable_changes
from machine.errors import (
    ConfigError,
    DriverError,
    HostNotUsable,
    InvalidState,
    MachineError,
    NotFound,
    TimeoutError_,
    UsageError,
)
from machine.names import validate_name
from machine.progress import Progress
from machine.shares import hostplan
from machine.store import MachineConfig, Store

log = logging.getLogger("machine.orchestrator")

READY_MARKER = "machine-os: ssh-ready"
FAILED_MARKER = "machine-os: boot-failed"
BOOT_TIMEOUT = 300.0
STOP_TIMEOUT = 60.0


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
    boot_timeout: float = BOOT_TIMEOUT


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


# -- create -----------------------------------------------------------------------------------


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
                                          progress.warn)
        engine = {"transport": "tls", "port": 2376, **req.engine}
        secrets = {o.key for o in cls.options if o.secret}
        cfg = MachineConfig(name=req.name, driver=req.driver,
                            driver_options={k: v for k, v in options.items() if k not in secrets},
                            engine=engine, swarm=dict(req.swarm), labels=dict(req.labels), shares=shares)
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
            _boot(store, cfg, driver, progress, req.boot_timeout)
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
    from machine.agent import control

    control.stop(store.machine_dir(name))
    if driver is not None:
        try:
            driver.remove()
        except Exception as e:  # keep the original error; say what could not be undone
            progress.warn(f"could not remove the VM: {e}")
    try:
        store.remove(name)
    except MachineError as e:
        progress.warn(e.message)


# -- boot and wait ----------------------------------------------------------------------------


def _boot(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress, timeout: float) -> None:
    if driver.status() != State.RUNNING:
        with progress.step("Starting VM"):
            driver.start()
            store.save(cfg)
    if driver.features.managed_engine:
        wait_ready(driver, progress, timeout)
    _record_share_errors(cfg, driver, progress)


def _record_share_errors(cfg: MachineConfig, driver: Driver, progress: Progress) -> None:
    """What the guest reported about its shared folders at this boot: saved (ls shows it in ERRORS) and told.
    A share that failed does not stop the machine."""
    cfg.share_errors = hostplan.boot_errors(driver.ctx.shares, driver.console_log()) if cfg.shares else []
    for err in cfg.share_errors:
        progress.warn(f"{err} (the machine runs without it; 'machine doctor' says which mechanism is used)")


def wait_ready(driver: Driver, progress: Progress, timeout: float = BOOT_TIMEOUT) -> None:
    """Wait for the guest: its readiness line on the serial console (when the driver keeps a
    console log), then an SSH banner. Fails early when the VM stops or reports a boot failure,
    showing the tail of the console log."""
    console = driver.console_log()

    def failed() -> str | None:
        if console and waiting.serial_has(console, FAILED_MARKER):
            return "the machine OS reported a boot failure"
        state = driver.status()
        if state not in (State.RUNNING, State.STARTING):
            return f"the VM is {state}"
        return None

    hint = "The guest did not come up. Console log tail:\n" + waiting.log_tail(console) if console else \
        "Check that the machine boots and that sshd runs in it."
    with progress.step("Waiting for the machine to boot"):
        if console:
            try:
                waiting.until(lambda: waiting.serial_has(console, READY_MARKER) or _banner(driver),
                              timeout=timeout, what="the machine to boot", interval=0.2, failed=failed)
            except TimeoutError_ as e:
                e.hint = "Console log tail:\n" + waiting.log_tail(console)
                raise
        # sshd runs (or the console says nothing): give each connection time for its banner. A slow guest (TCG on
        # a busy host) needs seconds to fork and re-exec sshd per connection; dropping it after 2 s and trying again
        # piled up unfinished sshd children until MaxStartups refused them all (load ~16: ssh-ready on the console,
        # no banner in 300 s).
        waiting.until(lambda: _banner(driver, SSH_BANNER_WAIT), timeout=timeout, what="SSH", interval=0.2,
                      hint=hint, failed=failed)


SSH_BANNER_WAIT = 20.0


def _banner(driver: Driver, banner_wait: float | None = None) -> bool:
    ep = driver.ssh_endpoint()
    return bool(ep) and waiting.ssh_banner(ep.host, ep.port, banner_wait=banner_wait)  # type: ignore[union-attr]


# -- lifecycle --------------------------------------------------------------------------------


def start(store: Store, name: str, progress: Progress, debug: bool = False) -> None:
    with store.lock(name):
        cfg = store.load(name)
        driver = driver_for(store, cfg, debug)
        if driver.status() == State.RUNNING:
            if driver.features.always_running:  # as docker-machine: nothing was started, so say it and fail
                raise InvalidState(f"Machine {name!r} is already running.",
                                   f"Driver {cfg.driver} machines are not started or stopped by machine.")
            progress.info(f"Machine {name!r} is already running.")
            if agent_up(store, cfg, driver, progress):
                progress.info("Its agent (published ports) was not running: started it again.")
            return
        check_saved_options(cfg)
        _boot(store, cfg, driver, progress, BOOT_TIMEOUT)
        if driver.features.managed_engine and not cfg.origin:  # a docker-machine record's certificates stay as they are
            from machine import provision

            provision.after_start(store, cfg, driver, progress)
        store.save(cfg)
        agent_up(store, cfg, driver, progress)
        sync_context(store, cfg)


def agent_up(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress) -> bool:
    """Start the machine's agent (it forwards the ports containers publish) unless it runs or the machine
    has none (no guest reached over SSH, no forward path, or an engine reached over SSH). True when it was
    started now."""
    from machine.agent import control

    if not control.wanted(cfg, driver):
        return False
    pid, started = control.start(store.root, cfg.name, store.machine_dir(cfg.name))
    if started:
        log.debug("agent of %r started (pid %d)", cfg.name, pid)
    return started


def refresh_engine(store: Store, name: str, progress: Progress, debug: bool = False) -> bool:
    """For env/config/use/ls, which found the machine's address outside its server certificate: re-issue
    and upload the certificate, update the URL and the machine's docker context (what a start does).
    Returns False, changing nothing, when the machine is not running."""
    with store.lock(name):
        cfg = store.load(name)
        if cfg.origin:  # a docker-machine record: its files are not rewritten (machine import converts it)
            return False
        driver = driver_for(store, cfg, debug)
        if not driver.features.managed_engine or driver.status() != State.RUNNING:
            return False
        from machine import provision

        try:
            provision.after_start(store, cfg, driver, progress)
        finally:
            store.save(cfg)
    sync_context(store, cfg)
    return True


def sync_context(store: Store, cfg: MachineConfig) -> None:
    """Rewrite the machine's docker context, if `machine use` made one, from its current engine URL and
    client certificates (after a start moved the URL, or new certificates)."""
    url = str(cfg.engine.get("url") or "")
    if not url or not registry.get(cfg.driver).features.managed_engine:  # an existing engine's URL never moves
        return
    from machine.client import dockercontext

    tls = cfg.engine.get("transport", "tls") == "tls"
    dockercontext.refresh(cfg.name, url, store.machine_dir(cfg.name) if tls else None,
                          f"machine {cfg.name} ({cfg.driver})")


def stop(store: Store, name: str, progress: Progress, *, force: bool = False, debug: bool = False,
         timeout: float = STOP_TIMEOUT) -> None:
    with store.lock(name):
        cfg = store.load(name)
        driver = driver_for(store, cfg, debug)
        state = driver.status()
        if state in (State.STOPPED, State.NOT_CREATED):
            from machine.agent import control

            control.stop(store.machine_dir(name))
            progress.info(f"Machine {name!r} is already stopped.")
            return
        verb = "Killing" if force else "Stopping"
        from machine.agent import control

        with progress.step(f"{verb} {name!r}"):
            control.stop(store.machine_dir(name))  # its forwards go first, while the VM still answers
            driver.stop(force=force)
            try:
                waiting.until(lambda: driver.status() in (State.STOPPED, State.NOT_CREATED), timeout=timeout,
                              what=f"{name!r} to stop", interval=0.3)
            except TimeoutError_:
                if force:
                    raise
                progress.warn(f"{name!r} did not power off within {timeout:.0f} s; killing it")
                driver.stop(force=True)
                waiting.until(lambda: driver.status() in (State.STOPPED, State.NOT_CREATED), timeout=30,
                              what=f"{name!r} to stop after kill", interval=0.3)
        store.save(cfg)


def set_options(store: Store, name: str, given: dict[str, Any], debug: bool = False) -> dict[str, tuple[Any, Any]]:
    """Change driver options of a stopped machine (`machine set`); they take effect at the next start.
    Returns {key: (old, new)} for what changed."""
    with store.lock(name):
        cfg = store.load(name)
        require_own(cfg, "change its options")
        changes = settable_changes(registry.get(cfg.driver), cfg.driver_options, given)
        if not changes:
            return {}
        state = driver_for(store, cfg, debug).status()
        if state != State.STOPPED:
            raise InvalidState(f"Machine {name!r} is {state}: its options can change only while it is stopped",
                               f"Stop it first: machine stop {name}")
        cfg.driver_options.update({key: new for key, (_, new) in changes.items()})
        store.save(cfg)
    return changes


def set_shares(store: Store, name: str, shares: list[dict[str, Any]], debug: bool = False
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Replace a stopped machine's shared folders (`machine set --share/--no-share`); the guest mounts the new
    ones at the next start. Returns (old, new)."""
    with store.lock(name):
        cfg = store.load(name)
        old = list(cfg.shares)
        if old == shares:
            return old, shares
        if shares:
            hostplan.require_mechanism(cfg.driver, registry.get(cfg.driver).features.share_mechanisms)
        state = driver_for(store, cfg, debug).status()
        if state != State.STOPPED:
            raise InvalidState(f"Machine {name!r} is {state}: its shared folders can change only while it is stopped",
                               f"Stop it first: machine stop {name}")
        cfg.shares = list(shares)
        cfg.share_errors = []
        from machine.provision.seeding import update_shares

        update_shares(cfg, store.machine_dir(name))
        store.save(cfg)
    return old, shares


def restart(store: Store, name: str, progress: Progress, debug: bool = False) -> None:
    stop(store, name, progress, debug=debug)
    start(store, name, progress, debug=debug)


def remove(store: Store, name: str, progress: Progress, *, force: bool = False, debug: bool = False) -> None:
    """Remove the VM, the machine directory and the machine's docker context, all under the machine's lock
    (so a concurrent `use` either finishes first or finds no machine). With force, remove the directory even
    when the driver fails (or the config cannot be read). A machine whose create was killed is removed as far
    as its config allows, without -f."""
    from machine.client import dockercontext

    with store.lock(name):
        directory = store.machine_dir(name)
        if not os.path.lexists(directory):
            raise NotFound(f"Host does not exist: {name!r}", "See 'machine ls'.")
        unfinished = createmarker.abandoned(directory)
        cluster = ""
        from machine.agent import control

        control.stop(store.machine_dir(name))
        try:
            cfg = store.load(name, unfinished=unfinished)
            cluster = str(cfg.swarm.get("cluster") or "")
            notice = removal_notice(store, cfg)
            if notice:
                progress.info(notice)
                store.remove(name)
                return
            driver = driver_for(store, cfg, debug)
            with progress.step(f"Removing {name!r}"):
                driver.remove()
            if driver.features.removal_note:
                progress.info(driver.features.removal_note)
        except MachineError as e:
            if not (force or unfinished):
                e.hint = (e.hint + "\n" if e.hint else "") + f"Use 'machine rm -f {name}' to remove it anyway."
                raise
            if not unfinished or not isinstance(e, ConfigError):
                progress.warn(f"{e}; removing the machine directory anyway")
        except Exception as e:
            if not force:
                raise DriverError(f"Removing {name!r} failed: {e}",
                                  f"Use 'machine rm -f {name}' to remove it anyway.") from e
            progress.warn(f"{e}; removing the machine directory anyway (-f)")
        store.remove(name)
        if cluster:
            from machine.swarm import clusternet

            if clusternet.cluster_dir(store, cluster).exists():
                clusternet.forget_member(store, cluster, name)  # its cluster address becomes free
        try:
            dockercontext.forget_machine(name, store.root)
        except MachineError as e:
            progress.warn(f"the docker context of {name!r} was not removed: {e.message}")


def require_own(cfg: MachineConfig, what: str) -> None:
    """Refuse to rewrite the files of a docker-machine record: `machine import` takes it over first."""
    if cfg.origin:
        raise InvalidState(f"Machine {cfg.name!r} is docker-machine's: machine does not {what} until it is "
                           "imported (its files are left as docker-machine wrote them)",
                           f"Import it first: machine import {cfg.name} (reversible: machine import --undo "
                           f"{cfg.name}), or use docker-machine.")


def removal_notice(store: Store, cfg: MachineConfig) -> str:
    """For a docker-machine machine whose driver we do not have: what `rm` does (and does not do)."""
    if not cfg.origin or cfg.origin.get("supported", True):
        return ""
    driver = cfg.origin.get("driver_name", cfg.driver)
    return (f"Machine {cfg.name!r} uses driver {driver}, which machine does not support: only its record "
            f"({store.machine_dir(cfg.name)}) is removed. The VM itself is left alone: remove it with "
            f"docker-machine or the {driver} provider's own tools.")


# -- docker-machine records ------------------------------------------------------------------


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


# -- queries ----------------------------------------------------------------------------------


def status(store: Store, name: str, debug: bool = False) -> State:
    cfg = store.load(name)
    return driver_for(store, cfg, debug).status()


def unexpected_exit(store: Store, name: str, debug: bool = False) -> str:
    """What is known when the machine's VM crashed or was killed (empty when it runs or was stopped)."""
    return driver_for(store, store.load(name), debug).unexpected_exit()


def require_running(driver: Driver, name: str) -> None:
    state = driver.status()
    if state != State.RUNNING:
        raise InvalidState(f"Machine {name!r} is not running (state: {state})", f"Start it: machine start {name}")
