"""The agent process (`python -m machine.agent`): watches the machine's engine (and, while host-network containers
run, the guest's listening sockets) and keeps the host's forwards equal to what the guest publishes.

Forwards are added through the driver's NAT rules ("hypervisor": qemu/libvirt hostfwd, VirtualBox natpf) or an
SSH relay ("ssh"), as the driver says (`Driver.port_forward_path`). A host port that is taken is never dropped
silently: it is listed as failed in `ports.json` (`machine ports NAME`) and the log, and retried. The agent exits
on SIGTERM (stop/kill/rm), when the machine directory is gone, when the VM is no longer running, or after the
engine stayed unreachable for ENGINE_GIVE_UP seconds; it removes its forwards on the way out.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import machinedir
from machine.agent import control, portspec
from machine.agent.portspec import HYPERVISOR, Forward, Wanted
from machine.agent.sshrelay import SSHLink, TCPRelay, host_port_free

log = logging.getLogger("machine.agent")

TICK = 1.0
STATUS_EVERY = 5.0  # seconds between asking the driver whether the VM still runs
RETRY_EVERY = 3.0  # seconds between attempts at forwards that failed (a taken host port may come free)
ENGINE_GIVE_UP = 600.0


def ports_address(cfg: Any, driver: Any) -> str:
    """Where forwards listen: the machine's `engine.ports_address` (create --ports-address), else the machine's own
    host address when it is a loopback one (qemu --qemu-host-address), else 127.0.0.1."""
    chosen = str(cfg.engine.get("ports_address") or "")
    if chosen:
        return chosen
    ip = ""
    try:
        ip = str(driver.ip() or "")
    except Exception:  # noqa: BLE001 - an address question must not stop the agent
        pass
    return ip if portspec.is_loopback(ip) else portspec.LOOPBACK


class Agent:
    def __init__(self, store_root: Path, name: str, machine_dir: Path) -> None:
        from machine.orchestrator import driver_for
        from machine.store import Store

        self.store, self.name, self.dir = Store(store_root), name, Path(machine_dir)
        self.cfg = self.store.load(name)
        self.driver = driver_for(self.store, self.cfg)
        self.path = self.driver.port_forward_path()
        self.address = ports_address(self.cfg, self.driver)
        self.active: dict[tuple[str, int], Forward] = {}
        self.relays: dict[tuple[str, int], TCPRelay] = {}
        self.failed: dict[tuple[str, int], str] = {}
        self.from_engine: dict[tuple[str, int], Wanted] = {}
        self.from_hostnet: dict[tuple[str, int], Wanted] = {}
        self.wanted: dict[tuple[str, int], Wanted] = {}
        self.engine_error = "connecting"
        self.engine_down_since = time.monotonic()
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.link = SSHLink(self._open_ssh)
        from machine.agent.hostnet import HostNetWatcher

        self.hostnet = HostNetWatcher(self.link, self.on_listeners, self.stop,
                                      skip_ports={22, int(self.cfg.engine.get("port") or 2376)})
        self.shares = self._share_mounts()

    def _share_mounts(self) -> list[Any]:
        """The reverse-sftp shares this agent serves (none unless that is the mechanism of this boot)."""
        from machine.shares import hostplan, mechanisms

        if self.cfg.driver_data.get("share_mechanism") != mechanisms.REVERSE_SFTP or not self.cfg.shares:
            return []
        from machine.agent.sftpmounts import SFTPMount

        return [SFTPMount(entry, self.link.transport, self._guest_run, self.stop, self._status_changed,
                          self._bind_users, self._restart_containers)
                for entry in hostplan.device_entries(self.cfg.shares)]

    # -- connections --------------------------------------------------------------------------------
    def _open_ssh(self) -> Any:
        from machine.provision.remote import open_session

        return open_session(self.store, self.cfg, self.driver, None, timeout=60)

    def _status_changed(self) -> None:
        with self.lock:
            self._write_status()

    def _guest_run(self, command: str) -> int:
        return int(self.link.session().run(command, check=False, timeout=30).returncode)

    def _bind_users(self, guest: str) -> list[tuple[str, str]]:
        """(id, StartedAt) of the running containers with a bind mount under `guest`, before it is mounted."""
        from machine.agent.sftpmounts import bind_users

        try:
            client = self._open_engine()
            return [(cid, client.inspect_container(cid)["State"]["StartedAt"])
                    for cid in bind_users(client.containers(), guest)]
        except Exception as e:  # noqa: BLE001 - the engine may not be up yet: nothing to restart then
            log.debug("containers using %s: %s", guest, e)
            return []

    def _restart_containers(self, before: list[tuple[str, str]]) -> None:
        """Restart those still in the run they were in before the mount (one the engine restarted since, e.g. by
        its restart policy, already sees the share)."""
        client = self._open_engine()
        for cid, started in before:
            try:
                state = client.inspect_container(cid)["State"]
                if state.get("Running") and state.get("StartedAt") == started:
                    log.info("restarting container %s: it started before its share was mounted", cid[:12])
                    client.restart(cid, timeout=10)
            except Exception as e:  # noqa: BLE001 - gone meanwhile: nothing to do
                log.warning("restarting container %s: %s", cid[:12], e)

    def _open_engine(self) -> Any:
        from machine.agent import engine

        self.cfg = self.store.load(self.name)  # a start may have moved the URL
        return engine.connect(str(self.cfg.engine.get("url") or ""), self.dir)

    def on_engine_error(self, text: str) -> None:
        with self.lock:
            if text and not self.engine_error:
                self.engine_down_since = time.monotonic()
            self.engine_error = text
            self._write_status()

    # -- what is wanted ---------------------------------------------------------------------------------
    def on_containers(self, containers: list[dict[str, Any]]) -> None:
        wanted = portspec.wanted_from_containers(containers, self.address, self.path)
        self.hostnet.track(portspec.host_network_ids(containers))
        with self.lock:
            self.from_engine = wanted
            self._reconcile()

    def on_listeners(self, listeners: list[tuple[str, str, int, str]]) -> None:
        wanted: dict[tuple[str, int], Wanted] = {}
        portspec.add_listeners(wanted, listeners, self.address, self.path)
        with self.lock:
            self.from_hostnet = wanted
            self._reconcile()

    def _reconcile(self) -> None:
        self.wanted = {**self.from_hostnet, **self.from_engine}  # a published port wins over a listener
        target = {k: w.forward for k, w in self.wanted.items() if not w.unsupported}
        plan = portspec.diff(self.active, target)
        for fwd in plan.remove:
            self._remove(fwd)
        for fwd in plan.add:
            self._add(fwd)
        self.failed = {k: v for k, v in self.failed.items() if k in target}
        self._write_status()

    # -- forwards -------------------------------------------------------------------------------------
    def _add(self, fwd: Forward) -> None:
        try:
            if fwd.path == HYPERVISOR:
                if not host_port_free(fwd.proto, fwd.host_ip, fwd.host_port):
                    raise OSError("in use")
                self.driver.forward_port(fwd.proto, fwd.host_ip, fwd.host_port, fwd.guest_port)
            else:
                self.relays[fwd.key] = TCPRelay(self.link, fwd.host_ip, fwd.host_port, fwd.guest_ip, fwd.guest_port)
                threading.Thread(target=self._warm_ssh, daemon=True).start()
        except OSError:
            self._failed(fwd, f"host port {fwd.host_ip}:{fwd.host_port}/{fwd.proto} is already in use on this host")
            return
        except Exception as e:  # noqa: BLE001 - the hypervisor refused: report it, keep the others
            self._failed(fwd, getattr(e, "message", None) or str(e))
            return
        self.active[fwd.key] = fwd
        if self.failed.pop(fwd.key, None) is not None:
            log.info("forwarded after all: %s", fwd.describe())
        else:
            log.info("forwarded %s", fwd.describe())

    def _failed(self, fwd: Forward, reason: str) -> None:
        if self.failed.get(fwd.key) != reason:
            log.warning("cannot forward %s: %s", fwd.describe(), reason)
        self.failed[fwd.key] = reason

    def _remove(self, fwd: Forward) -> None:
        self.active.pop(fwd.key, None)
        relay = self.relays.pop(fwd.key, None)
        if relay is not None:
            relay.close()
        elif fwd.path == HYPERVISOR:
            try:
                self.driver.unforward_port(fwd.proto, fwd.host_ip, fwd.host_port)
            except Exception as e:  # noqa: BLE001 - the VM may be gone already
                log.warning("removing %s: %s", fwd.describe(), e)
        log.info("released %s", fwd.describe())

    def _warm_ssh(self) -> None:
        try:
            self.link.transport()
        except Exception as e:  # noqa: BLE001 - the relay reports it per connection
            log.warning("SSH to the machine: %s", getattr(e, "message", None) or e)

    def remove_leftovers(self) -> None:
        """NAT rules a previous agent (killed, crashed) left in the running VM, from its status file."""
        previous = control.read_status(self.dir) or {}
        for f in previous.get("forwards", []):
            if f.get("path") == HYPERVISOR:
                try:
                    self.driver.unforward_port(f["proto"], f["host_ip"], int(f["host_port"]))
                    log.info("removed a leftover forward %s:%s/%s", f["host_ip"], f["host_port"], f["proto"])
                except Exception as e:  # noqa: BLE001
                    log.info("leftover forward %s: %s", f, e)

    # -- status -----------------------------------------------------------------------------------------
    def _write_status(self, stopped: bool = False) -> None:
        def row(fwd: Forward) -> dict[str, Any]:
            w = self.wanted.get(fwd.key)
            return {"proto": fwd.proto, "host_ip": fwd.host_ip, "host_port": fwd.host_port, "guest_ip": fwd.guest_ip,
                    "guest_port": fwd.guest_port, "path": fwd.path, "containers": list(w.containers) if w else []}

        failed = []
        for key, w in sorted(self.wanted.items()):
            reason = w.unsupported or self.failed.get(key)
            if reason and key not in self.active:
                failed.append({**row(w.forward), "error": reason})
        data = {"pid": os.getpid(), "updated": datetime.now(UTC).isoformat(timespec="seconds"),
                "path": self.path, "address": self.address, "engine": self.engine_error or "connected",
                "stopped": stopped, "forwards": [row(f) for _, f in sorted(self.active.items())], "failed": failed,
                "shares": [m.row() for m in self.shares]}
        try:
            control.write_status(self.dir, data)
        except OSError as e:  # the machine dir is going away
            log.debug("status: %s", e)

    # -- the process ------------------------------------------------------------------------------------
    def vm_gone(self) -> bool:
        from machine.driver import State

        try:
            return self.driver.status() not in (State.RUNNING, State.STARTING, State.PAUSED)
        except Exception as e:  # noqa: BLE001 - cannot tell: keep going
            log.debug("status: %s", e)
            return False

    def run(self) -> None:
        from machine.agent.engine import EngineWatcher

        log.info("agent for %r (pid %d): forwards on %s by %s", self.name, os.getpid(), self.address, self.path)
        if self.path == HYPERVISOR:
            self.remove_leftovers()
        self._write_status()
        watcher = EngineWatcher(self._open_engine, self.on_containers, self.on_engine_error, self.stop)
        threading.Thread(target=watcher.run, name="engine", daemon=True).start()
        for mount in self.shares:
            threading.Thread(target=mount.run, name=f"share-{mount.share['tag']}", daemon=True).start()
        last_status = last_retry = time.monotonic()
        misses = 0
        reason = "stopped"
        while not self.stop.wait(TICK):
            now = time.monotonic()
            if not (self.dir / machinedir.CONFIG).exists():
                reason = "the machine was removed"
                break
            if now - last_status >= STATUS_EVERY:
                last_status = now
                misses = misses + 1 if self.vm_gone() else 0
                if misses >= 2:
                    reason = "the VM is not running"
                    break
            if self.failed and now - last_retry >= RETRY_EVERY:
                last_retry = now
                with self.lock:
                    self._reconcile()
            if self.engine_error and now - self.engine_down_since > ENGINE_GIVE_UP:
                reason = f"the engine was unreachable for {ENGINE_GIVE_UP:.0f} s"
                break
        log.info("agent exits: %s", reason)
        self.stop.set()
        watcher.close()
        for mount in self.shares:
            mount.close()
        with self.lock:
            for fwd in list(self.active.values()):
                self._remove(fwd)
            self._write_status(stopped=True)
        self.link.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="machine-agent")
    parser.add_argument("--store", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    agent = Agent(Path(args.store), args.name, Path(args.dir))
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        agent.run()
    except KeyboardInterrupt:
        agent.stop.set()
