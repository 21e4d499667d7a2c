"""Driver `none`: an existing Docker engine at --url (as in docker-machine).

The machine is always Running; start, stop and kill refuse; rm forgets it and leaves the engine
alone. Nothing is provisioned over SSH: the URL is used as given.
"""

from __future__ import annotations

from machine import engineurl
from machine.driver import PORTS_NONE, Driver, Features, Option, State
from machine.errors import DriverError, UsageError


class NoneDriver(Driver):
    name = "none"
    description = "An existing Docker engine at --url; nothing is created."
    # An existing engine: always running, not ours to power, provision or forward ports to.
    features = Features(power=False, always_running=True, managed_engine=False, seed=False,
                        port_forwarding=PORTS_NONE)
    options = (Option("url", "URL of the existing Docker engine, e.g. tcp://10.0.0.5:2376", aliases=("--url",),
                      type=engineurl.EngineURLOption),)

    def _url(self) -> str:
        url = self.ctx.options.get("url")
        if not url:
            raise UsageError("The none driver needs --url",
                             "Example: machine create -d none --url tcp://10.0.0.5:2376 NAME")
        engineurl.parse(url)
        return url

    def create(self) -> None:
        self._url()

    def start(self) -> None:
        raise DriverError("A machine with the none driver cannot be started", "Start the engine on its host yourself.")

    def stop(self, force: bool = False) -> None:
        verb = "killed" if force else "stopped"
        raise DriverError(f"A machine with the none driver cannot be {verb}", "Stop the engine on its host yourself.")

    def remove(self) -> None:
        """Nothing to delete: the engine is not ours."""

    def status(self) -> State:
        return State.RUNNING

    def ip(self) -> str | None:
        return engineurl.parse(self._url()).host or None

    def engine_address(self, guest_port: int) -> tuple[str, int] | None:
        """Where the engine is: the URL's own host and port (the guest port means nothing here)."""
        parsed = engineurl.parse(self._url())
        return (parsed.host, parsed.port) if parsed.scheme == "tcp" and parsed.port else None

    def url(self) -> str | None:
        return self._url()


DRIVER = NoneDriver
