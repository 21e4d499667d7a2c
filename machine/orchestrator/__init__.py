"""The one orchestration layer (as podman machine's shim/host.go): it creates, starts, stops and
removes machines through drivers, waits for them, provisions them and saves their config.
Drivers never wait, provision or save; commands never talk to drivers: they call these functions.

Rooms: `loading` (a machine's driver, the locked load/save sequence), `create`, `boot` (waiting for the
guest), `lifecycle` (start, stop, set, rm), `hostagent` (the agent that forwards published ports), `engine`
(provision, certificates, docker context, engine version), `savedstate` (suspend, resume), `queries` (state,
IP, SSH access), `dockermachine` (docker-machine's records: import, host key pin)."""

from __future__ import annotations

from machine.orchestrator.boot import BOOT_TIMEOUT, FAILED_MARKER, READY_MARKER, wait_ready
from machine.orchestrator.create import CreateRequest, create
from machine.orchestrator.dockermachine import import_docker_machine, pin_host_key, undo_docker_machine_import
from machine.orchestrator.engine import (
    engine_version,
    new_ca,
    provision,
    refresh_engine,
    regenerate_certs,
    renew_certificate,
    sync_context,
    upgrade,
)
from machine.orchestrator.hostagent import agent_up
from machine.orchestrator.lifecycle import (
    STOP_TIMEOUT,
    removal_notice,
    remove,
    restart,
    set_options,
    set_share_mechanism,
    set_shares,
    start,
    stop,
)
from machine.orchestrator.loading import (
    check_available,
    check_saved_options,
    driver_for,
    locked,
    require_own,
    require_running,
)
from machine.orchestrator.queries import SSHAccess, ip, ssh_access, ssh_session, status, unexpected_exit
from machine.orchestrator.savedstate import suspend

__all__ = [
    "BOOT_TIMEOUT", "FAILED_MARKER", "READY_MARKER", "STOP_TIMEOUT", "CreateRequest", "SSHAccess", "agent_up",
    "check_available", "check_saved_options", "create", "driver_for", "engine_version", "import_docker_machine",
    "ip", "locked", "new_ca", "pin_host_key", "provision", "refresh_engine", "regenerate_certs", "removal_notice",
    "remove", "renew_certificate", "require_own", "require_running", "restart", "set_options", "set_share_mechanism",
    "set_shares",
    "ssh_access", "ssh_session", "start", "status", "stop", "suspend", "sync_context", "undo_docker_machine_import",
    "unexpected_exit", "upgrade", "wait_ready",
]
