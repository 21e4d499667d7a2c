"""Talking to libvirt: importing libvirt-python lazily, one cached connection per URI, turning
libvirt errors into MachineErrors with a fix hint, and mapping domain states to `State`.

libvirt-python is imported inside functions only: listing drivers (or `machine env`) must not
load it.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from machine.driver import State
from machine.errors import DriverError, HostNotUsable, MachineError, NotFound

INSTALL_HINT = ("Install the Python binding: pip install libvirt-python "
                "(it builds against the system library: apt install libvirt-dev pkg-config gcc), "
                "or pip install 'machine[libvirt]'.")
DAEMON_HINT = ("Start the libvirt daemon: 'systemctl start libvirtd' (or, without systemd, run 'libvirtd -d' "
               "as root), then check with: virsh -c {uri} version")
PERMISSION_HINT = ("Add your user to the libvirt group ('sudo usermod -aG libvirt $USER', then log in again), "
                   "or use your own session daemon: --libvirt-uri qemu:///session")
FILES_HINT = ("qemu runs as another user (libvirt-qemu) and cannot reach the machine's files in your private "
              "store. Use --libvirt-uri qemu:///session (qemu runs as you), or --libvirt-storage-dir with a folder "
              "that user can read; see drivers/libvirt/README.md (Permissions).")
NETWORK_HINT = "List the libvirt networks with: virsh -c {uri} net-list --all"

_lock = threading.Lock()
_connections: dict[str, Any] = {}
_error_handler_set = False


def import_libvirt() -> Any:
    """The libvirt module; HostNotUsable with an install hint when it is missing."""
    global _error_handler_set
    try:
        import libvirt
    except ImportError as e:
        raise HostNotUsable(f"The libvirt Python binding is not installed ({e})", INSTALL_HINT) from None
    if not _error_handler_set:
        # libvirt prints every error to stderr by default; we report them ourselves.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _error_handler_set = True
    return libvirt


def connect(uri: str) -> Any:
    """A connection to `uri`, reused while it is alive (libvirt connections are thread-safe).
    Keeping it open also keeps the in-process test:///default driver's state for the process."""
    libvirt = import_libvirt()
    with _lock:
        conn = _connections.get(uri)
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
            _connections.pop(uri, None)
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as e:
            raise connection_error(e, uri) from None
        if conn is None:  # very old bindings returned None instead of raising
            raise DriverError(f"Could not connect to libvirt at {uri}", DAEMON_HINT.format(uri=uri))
        if not _connections:
            atexit.register(close_all)  # close before interpreter teardown unloads the binding
        _connections[uri] = conn
        return conn


def close_all() -> None:
    """Close every cached connection."""
    for uri in list(_connections):
        forget(uri)


def forget(uri: str) -> None:
    """Drop the cached connection (after the daemon went away)."""
    with _lock:
        conn = _connections.pop(uri, None)
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to do
            pass


def _code(e: Exception) -> int | None:
    get = getattr(e, "get_error_code", None)
    return get() if callable(get) else None


def connection_error(e: Exception, uri: str) -> MachineError:
    """A MachineError for a failed libvirt.open(uri)."""
    import libvirt

    text = str(e)
    low = text.lower()
    code = _code(e)
    if "permission denied" in low or code in (libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED,
                                               libvirt.VIR_ERR_OPERATION_DENIED, libvirt.VIR_ERR_AUTH_UNAVAILABLE):
        return HostNotUsable(f"No permission to use libvirt at {uri}: {text}", PERMISSION_HINT)
    if code == libvirt.VIR_ERR_NO_CONNECT:
        return HostNotUsable(f"libvirt has no driver for {uri}: {text}",
                             "Install the hypervisor driver (apt install libvirt-daemon-driver-qemu) "
                             "or check the URI (e.g. qemu:///system, qemu:///session).")
    if ("no such file" in low or "connection refused" in low or "failed to connect socket" in low
            or code == libvirt.VIR_ERR_SYSTEM_ERROR):
        return HostNotUsable(f"The libvirt daemon is not reachable at {uri}: {text}", DAEMON_HINT.format(uri=uri))
    return HostNotUsable(f"Could not connect to libvirt at {uri}: {text}", DAEMON_HINT.format(uri=uri))


def operation_error(e: Exception, what: str, uri: str) -> MachineError:
    """A MachineError for a failed libvirt call (`what` says what we tried)."""
    import libvirt

    text = str(e)
    code = _code(e)
    if code == libvirt.VIR_ERR_NO_NETWORK:
        return NotFound(f"{what}: {text}", NETWORK_HINT.format(uri=uri))
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return NotFound(f"{what}: {text}", "The VM is gone; remove the machine with: machine rm -f NAME")
    if "permission denied" in text.lower() and code not in (libvirt.VIR_ERR_OPERATION_DENIED,
                                                              libvirt.VIR_ERR_AUTH_FAILED):
        return DriverError(f"{what}: {text}", FILES_HINT)
    if code in (libvirt.VIR_ERR_OPERATION_DENIED, libvirt.VIR_ERR_AUTH_FAILED):
        return DriverError(f"{what}: {text}", PERMISSION_HINT)
    if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT):
        forget(uri)
        return DriverError(f"{what}: {text}", DAEMON_HINT.format(uri=uri))
    if "network" in text.lower() and "not active" in text.lower():
        return DriverError(f"{what}: {text}", f"Start the network: virsh -c {uri} net-start NAME")
    return DriverError(f"{what}: {text}", "Run again with -D; the libvirt daemon's log may say more "
                                          "(/var/log/libvirt/qemu/<domain>.log for qemu's own errors).")


def is_code(e: Exception, *names: str) -> bool:
    """True when libvirt error `e` has one of the error codes called `names` (e.g. "VIR_ERR_NO_DOMAIN")."""
    import libvirt

    code = _code(e)
    return any(code == getattr(libvirt, n, object()) for n in names)


# libvirt's virDomainState values (stable ABI numbers, so this module needs no import to map them)
NOSTATE, RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = range(8)
_STATES = {
    NOSTATE: State.UNKNOWN,
    RUNNING: State.RUNNING,
    BLOCKED: State.RUNNING,  # running, waiting on I/O
    PAUSED: State.PAUSED,
    SHUTDOWN: State.STOPPING,  # being shut down
    SHUTOFF: State.STOPPED,
    CRASHED: State.ERROR,
    PMSUSPENDED: State.PAUSED,  # guest suspended itself (S3); resumes on a wakeup
}


def map_state(libvirt_state: int, managed_save: bool = False) -> State:
    """Our State for a libvirt domain state; a shut-off domain with a managed save image is Saved."""
    if libvirt_state == SHUTOFF and managed_save:
        return State.SAVED
    return _STATES.get(libvirt_state, State.UNKNOWN)
