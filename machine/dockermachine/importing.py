"""`machine import`: a docker-machine record becomes one of our machines, reversibly.

The original config.json is kept byte for byte beside it as config.json.docker-machine; the new config
carries our fields and docker-machine's keys as they were (machine.dockermachine.header), so docker-machine
still reads and drives the machine. `machine import --undo` puts the original back. No other file in the
machine folder is touched: certificates and keys are used where they are.
"""

from __future__ import annotations

from pathlib import Path

from machine import machinedir
from machine.dockermachine.header import IMPORTED
from machine.dockermachine.record import UnsupportedDriver, unsupported_message
from machine.errors import ConfigError, NotFound, UsageError
from machine.store import MachineConfig, Store

BACKUP_FILE = machinedir.DOCKER_MACHINE_BACKUP


def backup_path(store: Store, name: str) -> Path:
    return store.machine_dir(name) / BACKUP_FILE


def importable(cfg: MachineConfig) -> MachineConfig:
    """`cfg` if it is a docker-machine record machine can take over; else a clear error."""
    if not cfg.origin:
        what = "was imported already" if cfg.imported_from else "is machine's own"
        raise UsageError(f"Machine {cfg.name!r} {what}: there is nothing to import",
                         f"'machine import --undo {cfg.name}' gives an imported machine back to docker-machine.")
    if not cfg.origin.get("supported", True):
        raise UnsupportedDriver(unsupported_message(cfg.name, str(cfg.origin.get("driver_name"))) +
                                ", so it cannot be imported", "Keep managing it with docker-machine.")
    return cfg


def converted(store: Store, cfg: MachineConfig) -> tuple[MachineConfig, list[str]]:
    """Our config for the docker-machine record `cfg` (not saved), and warnings for the user."""
    warnings: list[str] = []
    mdir = store.machine_dir(cfg.name)
    cfg.origin = {}
    cfg.imported_from = IMPORTED
    key = cfg.ssh.get("key")
    if key and Path(key).parent == mdir:
        cfg.ssh["key"] = Path(key).name  # relative to the machine dir, as ours are
    if cfg.driver_data.get("ssh_key") and Path(cfg.driver_data["ssh_key"]).parent == mdir:
        cfg.driver_data["ssh_key"] = Path(cfg.driver_data["ssh_key"]).name
    server = mdir / machinedir.SERVER_CERT
    if server.is_file():
        from machine.provision import certs

        try:
            ips, dns = certs.server_cert_sans(server)
        except ValueError as e:
            raise ConfigError(f"The server certificate {server} cannot be read: {e}",
                              "Regenerate it with docker-machine first: docker-machine regenerate-certs "
                              f"{cfg.name}") from None
        cfg.engine["cert_sans"] = {"ips": ips, "dns": dns}
    ca_dir = Path(str(cfg.docker_machine.get("HostOptions", {}).get("AuthOptions", {}).get("CertDir") or ""))
    if str(ca_dir) not in ("", ".") and ca_dir.resolve() != store.certs_dir.resolve():
        warnings.append(f"{cfg.name!r} was made with the CA in {ca_dir}; certificates machine renews for it are "
                        f"signed by the CA in {store.certs_dir}.")
    return cfg, warnings


def restore(store: Store, name: str) -> None:
    """Put docker-machine's original config.json back and drop the backup (`machine import --undo`)."""
    from machine.atomicfile import write_atomic

    backup = backup_path(store, name)
    if not backup.is_file():
        raise NotFound(f"Machine {name!r} has no docker-machine backup ({backup.name}) to restore",
                       "Only machines converted with 'machine import' can be given back.")
    write_atomic(store.config_path(name), backup.read_bytes())
    backup.unlink()
