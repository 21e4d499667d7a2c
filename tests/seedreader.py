"""Run the guest's own seed reader (isos/rootfs/etc/machine-os/seed.jq) on a rendered seed, the way the machine
OS does at boot, with a `mount_share` shell function that records its arguments instead of mounting."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from machine.provision import seediso

SEED_JQ = Path(__file__).resolve().parents[1] / "isos" / "rootfs" / "etc" / "machine-os" / "seed.jq"


def guest_mount_calls(tmp_path: Path, shares: list[dict[str, Any]], mount_share: str) -> list[str]:
    """The lines `mount_share` (a shell function body) prints for each share the guest would mount."""
    docs = seediso.render_seed(instance_id="i-1", hostname="m1", authorized_keys=[], shares=shares)
    for name, data in docs.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "network-config").write_text("")
    out = subprocess.run(["jq", "-n", "-r", "--rawfile", "md", str(tmp_path / "meta-data"), "--rawfile", "ud",
                          str(tmp_path / "user-data"), "--rawfile", "nc", str(tmp_path / "network-config"),
                          "-f", str(SEED_JQ)], capture_output=True, text=True, check=True).stdout
    script = out + f"\nmount_share() {{ {mount_share}; }}\napply_shares\n"
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
