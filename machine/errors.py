"""Typed errors. Each carries a message, a hint telling the user what to do, and an exit code.

The CLI prints `Error: <message>` and `Hint: <hint>` and exits with `exit_code`; it never prints
a traceback for these (only with -D/--debug).
"""

from __future__ import annotations


class MachineError(Exception):
    """A user-facing error: exit code 1 unless a subclass says otherwise."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(MachineError):
    """Bad command-line input (exit 2)."""

    exit_code = 2


class ConfigError(MachineError):
    """A config or store file that cannot be used (exit 2)."""

    exit_code = 2


class HostNotUsable(MachineError):
    """This host cannot run the requested driver: an availability check failed (exit 3)."""

    exit_code = 3


class NotFound(MachineError):
    """No such machine (or other named object)."""

    exit_code = 1


class DriverError(MachineError):
    """A hypervisor operation failed."""

    exit_code = 1


class TimeoutError_(MachineError):  # noqa: N801 - avoid shadowing the builtin
    """Waiting for something took longer than its bound."""

    exit_code = 1


class LockedError(MachineError):
    """Another command holds this machine's lock."""

    exit_code = 1
