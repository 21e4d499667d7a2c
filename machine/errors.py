"""Typed errors. Each carries a message, a hint telling the user what to do, and an exit code.

The CLI prints `Error: <message>` and `Hint: <hint>` and exits with `exit_code`; it never prints
a traceback for these (only with -D/--debug). Every raise gives a hint (tests/test_errors.py checks it).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit status of `machine`: the only place these numbers are written."""

    OK = 0
    ERROR = 1  # an operation failed
    USAGE = 2  # bad command-line input, or a config/store file that cannot be used
    HOST_NOT_USABLE = 3  # this host cannot run the driver (an availability check failed)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class MachineError(Exception):
    """A user-facing error: ExitCode.ERROR unless a subclass says otherwise."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(MachineError):
    """Bad command-line input."""

    exit_code = ExitCode.USAGE


class ConfigError(MachineError):
    """A config or store file that cannot be used."""

    exit_code = ExitCode.USAGE


class HostNotUsable(MachineError):
    """This host cannot run the requested driver: an availability check failed."""

    exit_code = ExitCode.HOST_NOT_USABLE


class NotFound(MachineError):
    """No such machine (or other named object)."""


class ImageNotFound(NotFound):
    """A boot image (the machine OS kernel, initrd or ISO) is not on this host."""


class ImageError(MachineError):
    """Building, packing or unpacking a machine OS image failed, or a bundle is not what it claims to be."""


class InvalidState(MachineError):
    """The machine is in the wrong state for this command (not running, not stopped, not provisioned
    yet). The hint names the command that gets it there."""


class Unsupported(MachineError):
    """The machine cannot do this at all (its driver, OS or architecture does not support it)."""


class Conflict(MachineError):
    """Something this command would make already exists and was not made by machine."""


class DriverError(MachineError):
    """A hypervisor operation failed."""


class SSHError(MachineError):
    """Connecting to a machine over SSH, or a command or file transfer over it, failed."""


class ProvisionError(MachineError):
    """Installing, configuring or reaching a machine's Docker engine failed."""


class DownloadError(MachineError):
    """Fetching an image, checksum list or engine archive failed, or the file is not the expected one."""


class ClientError(MachineError):
    """Wiring the local docker client failed (its contexts, its CLI plugin folder)."""


class ClusterError(MachineError):
    """A Swarm cluster operation failed."""


class PartialFailure(MachineError):
    """A command on several machines failed for some of them (each failure was reported already)."""


class TimeoutError_(MachineError):  # noqa: N801 - avoid shadowing the builtin
    """Waiting for something took longer than its bound."""


class LockedError(MachineError):
    """Another command holds this machine's lock."""
