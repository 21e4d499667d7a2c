"""The driver contract: a small abstract driver, a state enum and option declarations.

Drivers make, start, stop and remove VMs and answer questions about them. They never wait,
provision or save: `machine.orchestrator` does that. Anything a driver must remember (ports,
domain names) goes into `self.data`, which the orchestrator saves. Driver modules import only
the standard library at module level; hypervisor libraries are imported inside methods, so the
registry can list drivers and their options cheaply.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from machine.errors import UsageError


class State(StrEnum):
    NOT_CREATED = "NotCreated"
    STOPPED = "Stopped"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    PAUSED = "Paused"
    SAVED = "Saved"
    ERROR = "Error"
    TIMEOUT = "Timeout"
    UNKNOWN = "Unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Option:
    """One driver option, declared once. For driver `qemu` and option `memory`:
    flag `--qemu-memory`, environment variable `QEMU_MEMORY`, config key `memory`."""

    name: str
    help: str
    default: Any = None
    type: type = str
    multiple: bool = False
    choices: tuple[str, ...] | None = None
    secret: bool = False
    # Extra flag spellings kept for docker-machine compatibility (e.g. none's --url).
    aliases: tuple[str, ...] = ()
    # Extra environment variables read when the option's own is unset (docker-machine's: VIRTUALBOX_CPU_COUNT).
    env_aliases: tuple[str, ...] = ()
    # True when `machine set` may change it on a stopped machine (it takes effect at the next start).
    settable: bool = False
    # Bounds of a number option (inclusive), checked on every value from a flag, the environment, `machine set`
    # and the saved config, so no out-of-range value reaches a hypervisor.
    minimum: int | None = None
    maximum: int | None = None
    # False for a string option that must not be empty when given (e.g. a connection URI).
    allow_empty: bool = True

    def flag(self, driver: str) -> str:
        return f"--{driver}-{self.name}"

    def envvar(self, driver: str) -> str:
        return f"{driver}_{self.name}".upper().replace("-", "_")

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    def convert(self, driver: str, raw: Any, given_as: str | None = None) -> Any:
        """Turn a string (from the environment) or a value into this option's type. A bad value is a UsageError
        naming `given_as` (the spelling the user typed: an alias flag, an environment variable), else the flag."""
        if self.multiple:
            if raw is None:
                return []
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return [self._one(driver, x, given_as) for x in items if x != ""]
        return None if raw is None else self._one(driver, raw, given_as)

    def _one(self, driver: str, raw: Any, given_as: str | None = None) -> Any:
        flag = given_as or self.flag(driver)
        try:
            if self.type is bool:
                if isinstance(raw, bool):
                    value: Any = raw
                elif str(raw).lower() in ("1", "true", "yes", "on"):
                    value = True
                elif str(raw).lower() in ("0", "false", "no", "off", ""):
                    value = False
                else:
                    raise ValueError(raw)
            else:
                value = self.type(raw)
        except (TypeError, ValueError):
            what = getattr(self.type, "description", f"a {self.type.__name__}")
            raise UsageError(f"Invalid value {raw!r} for {flag}", f"{flag} takes {what}.") from None
        if self.choices and value not in self.choices:
            raise UsageError(
                f"Invalid value {raw!r} for {flag}",
                f"Choose one of: {', '.join(self.choices)}.",
            )
        self.check(driver, value, given_as)
        return value

    def check(self, driver: str, value: Any, given_as: str | None = None) -> None:
        """Refuse a value outside this option's bounds (UsageError naming the flag, or `given_as`, and the range)."""
        if value is None or self.multiple:
            return
        flag = given_as or self.flag(driver)
        numeric = self.type is not bool and isinstance(self.type, type) and issubclass(self.type, int | float)
        if numeric and not isinstance(value, bool) and isinstance(value, int | float):
            low, high = self.minimum, self.maximum
            if (low is not None and value < low) or (high is not None and value > high) or value != value:
                shown = str(value) if len(str(value)) <= 20 else str(value)[:17] + "..."
                bounds = f"from {low} to {high}" if low is not None and high is not None else (
                    f"at least {low}" if low is not None else f"at most {high}")
                hint = f"{flag} takes a number {bounds}."
                unit_hint = getattr(self.type, "below_minimum_hint", None)
                if unit_hint and low is not None and value < low:
                    hint = unit_hint(int(value), low, high) or hint
                raise UsageError(f"Invalid value {shown} for {flag}", hint)
        elif not self.allow_empty and isinstance(value, str) and not value.strip():
            raise UsageError(f"{flag} must not be empty",
                             f"Give a value, or leave {flag} out for the default ({self.default}).")


PORTS_HYPERVISOR = "hypervisor"
PORTS_SSH = "ssh"
PORTS_NONE = ""
PORT_FORWARDING = (PORTS_HYPERVISOR, PORTS_SSH, PORTS_NONE)
CLUSTER_VDE = "vde"
CLUSTER_DRIVER = "driver"
CLUSTER_NONE = ""
CLUSTER_NICS = (CLUSTER_VDE, CLUSTER_DRIVER, CLUSTER_NONE)


@dataclass(frozen=True)
class Features:
    """What a driver can do, declared once on its class (`features = Features(...)`, as Lima's
    DriverFeatures). The orchestrator, commands, provisioning and the contract suite read this; nothing
    outside `machine/registry.py` and the drivers compares a driver's name."""

    # start, stop and kill are machine's to do (False: the host's power belongs to someone else).
    power: bool = True
    # Running from create to remove, whatever machine does (an existing engine: `none`).
    always_running: bool = False
    # machine reaches the machine over SSH and provisions its engine (False: an existing engine at a URL).
    managed_engine: bool = True
    # The driver boots an image and wants a NoCloud seed (ctx.seed_path) with keys and engine config.
    seed: bool = True
    # What a Swarm node's second NIC (ctx.cluster_nic) plugs into: CLUSTER_VDE (the vde_switch machine starts
    # per cluster), CLUSTER_DRIVER (a network the driver links the nodes with itself), CLUSTER_NONE (no
    # cluster network: the driver cannot make Swarm nodes).
    cluster_nic: str = CLUSTER_NONE
    # Told by `machine rm` after the removal (e.g. that an existing host was left alone).
    removal_note: str = ""
    # How host folders can be shared into the guest, fastest first ("virtiofs", "9p", "vboxsf", "smb",
    # "reverse-sftp": sshfs in the guest served by the agent over SSH); empty: not at all.
    share_mechanisms: tuple[str, ...] = ()
    # How ports published in the guest reach the host: PORTS_HYPERVISOR (NAT rules the driver adds, e.g.
    # QMP hostfwd or VirtualBox natpf), PORTS_SSH (a relay over the machine's SSH connection), PORTS_NONE.
    port_forwarding: str = PORTS_SSH
    # The VM's state can be saved to disk and resumed (suspend/resume).
    saved_state: bool = False

    def __post_init__(self) -> None:
        if self.port_forwarding not in PORT_FORWARDING:
            raise ValueError(f"port_forwarding must be one of {PORT_FORWARDING}, not {self.port_forwarding!r}")
        if self.cluster_nic not in CLUSTER_NICS:
            raise ValueError(f"cluster_nic must be one of {CLUSTER_NICS}, not {self.cluster_nic!r}")
        if isinstance(self.share_mechanisms, str):
            raise ValueError("share_mechanisms is a tuple of mechanism names")


@dataclass(frozen=True)
class Availability:
    """Whether this host can run a driver; `hint` says how to fix it when it cannot."""

    ok: bool
    message: str = ""
    hint: str = ""


@dataclass(frozen=True)
class SSHEndpoint:
    host: str
    port: int
    user: str


@dataclass
class DriverContext:
    """What a driver knows about its machine."""

    name: str
    machine_dir: Path
    options: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None
    # A NoCloud seed ISO (label cidata) the orchestrator built for drivers that boot an image.
    seed_path: Path | None = None
    # The engine's TCP port in the guest (drivers that forward ports forward this one).
    engine_port: int = 2376
    # A second NIC on a cluster network (Swarm): {"switch": vde socket dir, "mac": ..., "address": ...,
    # "prefix": 24}. Drivers that support clusters plug a NIC with that MAC into the switch.
    cluster_nic: dict[str, Any] | None = None
    # Shared folders: [{"tag": "msh0", "host": "/home/me", "guest": "/home/me", "ro": False}]; the driver
    # exposes each host folder under its tag with the mechanism it picks (machine.shares.mechanisms).
    shares: list[dict[str, Any]] = field(default_factory=list)
    # The machine's --share-mechanism: "auto" (the fastest usable) or one of features.share_mechanisms. Drivers
    # pass it, with the share file systems their image declares (data "guest_share_fs"), to mechanisms.choose.
    share_mechanism: str = "auto"
    debug: bool = False


class Driver(ABC):
    """Base class of every driver. Subclasses set `name`, `options`, and implement the methods."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    features: ClassVar[Features] = Features()

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    @property
    def data(self) -> dict[str, Any]:
        return self.ctx.data

    def opt(self, key: str) -> Any:
        return self.ctx.options.get(key.replace("-", "_"))

    # -- availability -------------------------------------------------------------------
    @classmethod
    def check_available(cls, options: dict[str, Any] | None = None) -> Availability:
        """Can this host run the driver? Never raises: answers with a message and a fix hint."""
        return Availability(True)

    # -- what the user stated in driver options (an existing host) ------------------------------
    @classmethod
    def stated_engine_port(cls, options: dict[str, Any]) -> int | None:
        """The port the engine listens on, when a driver option states it (an existing host's port);
        None: the engine listens where --engine-port says."""
        return None

    @classmethod
    def stated_ssh_user(cls, options: dict[str, Any]) -> str | None:
        """The SSH login user, when a driver option states it; None: the image's user."""
        return None

    # -- lifecycle (idempotent where it makes sense) ---------------------------------------
    @abstractmethod
    def create(self) -> None:
        """Make the VM exist (stopped or running). Calling it on an existing VM is a no-op."""

    @abstractmethod
    def start(self) -> None:
        """Start the VM; no-op when it runs. Does not wait for the guest to be ready."""

    @abstractmethod
    def stop(self, force: bool = False) -> None:
        """Ask the guest to power off (ACPI); with force, power it off at once (kill)."""

    @abstractmethod
    def remove(self) -> None:
        """Delete the VM and everything the driver made for it. No-op when it is gone."""

    @abstractmethod
    def status(self) -> State:
        """The VM's state, asked of the hypervisor (never stored)."""

    # -- saved state (features.saved_state: suspend and resume) -------------------------------------
    def saved_state_blocker(self) -> str:
        """Why this machine's state cannot be saved now (e.g. a shared-folder device the hypervisor cannot
        save); "" when it can."""
        return ""

    def save_state(self) -> None:
        """Begin saving the running VM's memory and devices to disk; the guest stops running. May return before
        the state is on disk (qemu saves in the background): the orchestrator then polls finish_save()."""
        raise NotImplementedError(f"driver {self.name} cannot save a VM's state")

    def finish_save(self) -> bool:
        """True once the saved state is complete and the VM is off (status() says SAVED). Raises DriverError
        when saving failed (the VM runs on, as far as the hypervisor allows)."""
        return self.status() == State.SAVED

    def discard_saved_state(self) -> None:
        """Forget the VM's saved state: the next start boots from scratch. No-op when there is none. Called after
        a resume succeeded (the hypervisor may have dropped it already), after one failed, and by `machine kill`."""
        return None

    # -- addresses ---------------------------------------------------------------------------
    def ip(self) -> str | None:
        """The address the host reaches the machine at (may be 127.0.0.1 with forwards)."""
        return None

    def ssh_endpoint(self) -> SSHEndpoint | None:
        """Where SSH listens, only while running."""
        return None

    def engine_address(self, guest_port: int) -> tuple[str, int] | None:
        """(host, port) the host reaches the guest's engine port `guest_port` at."""
        ip = self.ip()
        return (ip, guest_port) if ip else None

    def url(self) -> str | None:
        """The engine URL, e.g. tcp://127.0.0.1:41234."""
        addr = self.engine_address(self.ctx.engine_port)
        return f"tcp://{addr[0]}:{addr[1]}" if addr else None

    def notes(self) -> list[str]:
        """Things the user should know about this machine's VM (e.g. "KVM unusable, using TCG")."""
        return []

    def console_log(self) -> Path | None:
        """Path of the serial console log, when the driver keeps one."""
        return None

    def unexpected_exit(self) -> str:
        """When the VM is not running although nobody stopped it (its process crashed or was killed): what is
        known about it (the exit, the console log), for `ls` and `status` to say. Empty otherwise."""
        return ""

    # -- published ports (called by the machine's agent while the VM runs) -----------------------
    def port_forward_path(self) -> str:
        """This machine's forward path: its class's `features.port_forwarding`, unless the machine's own
        configuration rules it out (e.g. a libvirt guest on a libvirt network has its own address: PORTS_SSH)."""
        return self.features.port_forwarding

    def forward_port(self, proto: str, host_ip: str, host_port: int, guest_port: int) -> None:
        """Add a NAT rule host_ip:host_port -> the guest's guest_port (proto tcp|udp). Raises DriverError
        naming the reason when the hypervisor refuses (e.g. the host port is taken)."""
        raise NotImplementedError(f"driver {self.name} adds no NAT rules")

    def unforward_port(self, proto: str, host_ip: str, host_port: int) -> None:
        """Remove the NAT rule forward_port added; no error when it is gone already."""
        raise NotImplementedError(f"driver {self.name} adds no NAT rules")


def option_values(driver_cls: type[Driver], given: dict[str, Any], environ: dict[str, str] | None = None,
                  given_as: dict[str, str] | None = None) -> dict[str, Any]:
    """Resolve each declared option: flag value, else environment variable, else default. A bad value names what
    it came from: the flag as typed (`given_as`: key -> an alias flag), or the environment variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for opt in driver_cls.options:
        raw = given.get(opt.key)
        source = (given_as or {}).get(opt.key)
        for var in (opt.envvar(driver_cls.name), *opt.env_aliases):
            if raw is None or (opt.multiple and not raw):
                raw, source = env.get(var), var
        if raw is None:
            raw, source = opt.default, None
        values[opt.key] = opt.convert(driver_cls.name, raw, source)
    return values


def settable_changes(driver_cls: type[Driver], current: dict[str, Any], given: dict[str, Any]
                     ) -> dict[str, tuple[Any, Any]]:
    """For `machine set`: {key: (old, new)} for the given option values that differ from the saved
    ones. Options that cannot change after create are refused, naming the ones that can."""
    by_key = {o.key: o for o in driver_cls.options}
    changes: dict[str, tuple[Any, Any]] = {}
    for key, raw in given.items():
        opt = by_key.get(key)
        if opt is None or not opt.settable:
            flag = opt.flag(driver_cls.name) if opt else f"--{driver_cls.name}-{key.replace('_', '-')}"
            can = ", ".join(o.flag(driver_cls.name) for o in driver_cls.options if o.settable) or "none"
            raise UsageError(f"{flag} cannot be changed after create",
                             f"'machine set' can change for driver {driver_cls.name}: {can}. "
                             "For anything else, recreate the machine.")
        new = opt.convert(driver_cls.name, raw)
        old = current.get(key, opt.default)
        if new != old:
            changes[key] = (old, new)
    return changes
