"""Driver `generic`: an existing host reached over SSH (as in docker-machine).

Nothing is created: `create` records the host and copies the SSH key into the machine directory;
the orchestrator then provisions the engine over SSH. The state is a TCP dial to the SSH port
(Running, or Error when it does not answer). `rm` forgets the machine and leaves the host alone;
start, stop and kill refuse: the host's power is not ours.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from machine import machinedir
from machine.driver import Driver, Features, Option, SSHEndpoint, State
from machine.errors import DriverError, UsageError

KEY_FILE = machinedir.EXISTING_HOST_KEY


def _default_key() -> str | None:
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        path = Path.home() / ".ssh" / name
        if path.is_file():
            return str(path)
    return None


class GenericDriver(Driver):
    name = "generic"
    description = "An existing host reached over SSH; machine installs and configures its Docker engine."
    # An existing host: its power is not ours, no image boots (no seed); machine provisions its engine over SSH.
    features = Features(power=False, always_running=True, seed=False,
                        removal_note="The host itself was left alone: only machine's record of it was removed.")
    options = (
        Option("ip-address", "IP address or host name of the host"),
        Option("ssh-user", "SSH user (needs root or passwordless sudo)", default="root"),
        Option("ssh-key", "SSH private key to log in with [default: ~/.ssh/id_ed25519, id_ecdsa or id_rsa]"),
        Option("ssh-port", "SSH port", default=22, type=int, minimum=1, maximum=65535),
        Option("engine-port", "Port the Docker engine listens on (TLS)", default=2376, type=int, minimum=1,
               maximum=65535),
    )

    @classmethod
    def stated_engine_port(cls, options: dict[str, Any]) -> int | None:
        return int(options.get("engine_port") or 0) or None

    @classmethod
    def stated_ssh_user(cls, options: dict[str, Any]) -> str | None:
        return str(options.get("ssh_user") or "") or None

    def _host(self) -> str:
        host = self.opt("ip_address")
        if not host:
            raise UsageError("The generic driver needs --generic-ip-address",
                             "Example: machine create -d generic --generic-ip-address 203.0.113.5 "
                             "--generic-ssh-key ~/.ssh/id_ed25519 NAME")
        return str(host)

    def create(self) -> None:
        self._host()
        key = self.ctx.machine_dir / KEY_FILE
        if not key.exists():
            source = self.opt("ssh_key") or _default_key()
            if not source:
                raise UsageError("No SSH key for the generic driver",
                                 "Give one with --generic-ssh-key PATH (the host must accept it).")
            src = Path(os.path.expanduser(str(source)))
            if not src.is_file():
                raise UsageError(f"SSH key {src} not found", "Give an existing private key with --generic-ssh-key.")
            shutil.copyfile(src, key)
            os.chmod(key, 0o600)
        self.data["ssh_key"] = KEY_FILE

    def start(self) -> None:
        raise DriverError("A machine with the generic driver cannot be started by machine",
                          "Power the host on yourself; machine only manages its Docker engine.")

    def stop(self, force: bool = False) -> None:
        verb = "killed" if force else "stopped"
        raise DriverError(f"A machine with the generic driver cannot be {verb} by machine",
                          "Shut the host down yourself; 'machine rm' forgets it without touching it.")

    def remove(self) -> None:
        """Nothing to delete on the host: it is not ours. The orchestrator removes the machine dir."""

    def status(self) -> State:
        from machine import waiting

        host, port = self._host(), int(self.opt("ssh_port") or 22)
        if waiting.tcp_open(host, port):
            self._down = ""
            return State.RUNNING
        # machine cannot tell a host that is off from one it cannot reach: Error, with the reason for ls and status
        self._down = f"no SSH answer from {host}:{port}: the host is off or cannot be reached from here"
        return State.ERROR

    def unexpected_exit(self) -> str:
        """Why status() is Error (the host's SSH port does not answer); empty when it answers."""
        if not hasattr(self, "_down"):  # asked on its own (machine status): look
            self.status()
        return self._down

    def ip(self) -> str | None:
        return self._host()

    def ssh_endpoint(self) -> SSHEndpoint | None:
        return SSHEndpoint(self._host(), int(self.opt("ssh_port") or 22), str(self.opt("ssh_user") or "root"))

    def engine_address(self, guest_port: int) -> tuple[str, int] | None:
        return self._host(), int(guest_port)


DRIVER = GenericDriver
