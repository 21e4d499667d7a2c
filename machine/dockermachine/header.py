"""The docker-machine keys in our own config files, so docker-machine's `ls` does not choke on them.

docker-machine's filestore reads every `machines/*/config.json` (directories starting with "." are
skipped). A file without `ConfigVersion` is taken for a pre-0.5 record and "migrated": docker-machine warns
"Could not unmarshal raw host ...", saves it as config.json.bak and REWRITES config.json in its own format,
which loses our fields. So every config we save also carries docker-machine's keys (ConfigVersion 3,
Driver, DriverName, HostOptions, Name) after ours: docker-machine reads them as a current record and
rewrites nothing (Go's decoder ignores our other keys and, where a key of ours folds to one of its field
names - `driver`, `name` - the later key wins, which is its own). Our `none` and `generic` machines are
then usable from docker-machine too (DriverName none/generic with the fields those drivers read); the
others carry DriverName `machine-<driver>`, which docker-machine lists as a driver it does not have.

A machine `machine import` converted keeps its docker-machine keys as they were (its driver, VM name,
ports): docker-machine can still drive it, and `machine import --undo` gives docker-machine back its file.
If docker-machine saves such a file itself (e.g. after its `start`), our keys are dropped and machine reads
it as a docker-machine record again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from machine.store import MachineConfig, Store

IMPORTED = "docker-machine"


def refresh(store: Store, cfg: MachineConfig) -> None:
    """Set `cfg.docker_machine` before a save: kept for an imported machine, generated for ours."""
    if cfg.imported_from == IMPORTED and cfg.docker_machine:
        return
    from machine.dockermachine.view import generated

    cfg.docker_machine = generated(store, cfg)
