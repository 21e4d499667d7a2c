"""The engine side of the agent: docker-py through TLS with the machine's client certificates, the container
list, and the event stream that says when to look again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("machine.agent.engine")

API_TIMEOUT = 15.0
EVENTS = {"start", "die", "stop", "kill", "destroy", "pause", "unpause", "restart", "connect", "disconnect"}


def connect(url: str, cert_dir: Path) -> Any:
    """A docker APIClient for the engine at tcp://HOST:PORT, verified against the machine's CA. The environment's
    proxies and CA bundles (REQUESTS_CA_BUNDLE would replace the machine's CA) do not apply: like the docker CLI,
    the agent talks to its engine directly."""
    import docker
    from docker.tls import TLSConfig

    class EngineAPI(docker.APIClient):
        trust_env = property(lambda self: False, lambda self, value: None)  # requests.Session sets it in __init__

    if not url.startswith("tcp://"):
        raise ValueError(f"the agent reaches engines over TLS (tcp://...), not {url!r}")
    tls = TLSConfig(client_cert=(str(cert_dir / "cert.pem"), str(cert_dir / "key.pem")),
                    ca_cert=str(cert_dir / "ca.pem"), verify=True)
    return EngineAPI(base_url="https://" + url[len("tcp://"):], tls=tls, timeout=API_TIMEOUT)


def running_containers(client: Any) -> list[dict[str, Any]]:
    """`GET /containers/json`: the running containers with their Ports and HostConfig.NetworkMode."""
    return list(client.containers())


class EngineWatcher:
    """Calls `changed(containers)` with the running containers once connected and again after every container
    event, until stop(). Reconnects (with `on_error(text)` told why) when the engine goes away."""

    def __init__(self, open_client: Callable[[], Any], changed: Callable[[list[dict[str, Any]]], None],
                 on_error: Callable[[str], None], stop: threading.Event) -> None:
        self._open, self._changed, self._on_error, self._stop = open_client, changed, on_error, stop
        self._stream: Any = None
        self._lock = threading.Lock()

    def run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                client = self._open()
                stream = client.events(decode=True, filters={"type": "container"})
                with self._lock:
                    self._stream = stream
                self._changed(running_containers(client))  # after subscribing: no start is missed between
                self._on_error("")
                delay = 0.5
                for event in stream:
                    if self._stop.is_set():
                        break
                    if str(event.get("Action") or event.get("status") or "").split(":")[0] in EVENTS:
                        self._changed(running_containers(client))
                if not self._stop.is_set():
                    raise ConnectionError("the engine closed its event stream")
            except Exception as e:  # noqa: BLE001 - any failure: say so, wait, reconnect
                if self._stop.is_set():
                    break
                log.warning("engine: %s", e)
                self._on_error(f"engine unreachable: {e}")
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        with self._lock:
            stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a dead stream
                pass
