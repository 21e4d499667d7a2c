"""Booting a machine and waiting for it: the readiness line on its serial console, then an SSH banner."""

from __future__ import annotations

from machine import waiting
from machine.driver import Driver, State
from machine.errors import TimeoutError_
from machine.progress import Progress
from machine.shares import hostplan
from machine.store import MachineConfig, Store

READY_MARKER = "machine-os: ssh-ready"
FAILED_MARKER = "machine-os: boot-failed"
BOOT_TIMEOUT = 300.0


def boot(store: Store, cfg: MachineConfig, driver: Driver, progress: Progress, timeout: float) -> None:
    """Start the VM unless it runs (saving what the driver learned), then wait until SSH answers."""
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
    cfg.share_errors = hostplan.boot_errors(driver.ctx.shares, driver.console_log(),
                                            driver.data.get("share_mechanism", "")) if cfg.shares else []
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


SSH_BANNER_WAIT = 30.0  # OpenSSH 10's sshd-session: up to 28 s for a banner under TCG at load 10-13


def _banner(driver: Driver, banner_wait: float | None = None) -> bool:
    ep = driver.ssh_endpoint()
    return bool(ep) and waiting.ssh_banner(ep.host, ep.port, banner_wait=banner_wait)  # type: ignore[union-attr]
