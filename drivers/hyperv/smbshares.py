"""Shared folders on Hyper-V: one SMB share per host folder on the Hyper-V host (smb-share.ps1), open only to a
local account made for this machine, mounted with CIFS by the guest at boot.

The account's password is random per sync and lives only in the seed ISO (user-data `machine_shares[].cifs`,
readable by root in the guest; the seed file is mode 0600 here and sits in the VM's folder on the host). It is
never in config.json (driver data holds the account, the share names and the host's address), and it is masked
in the driver's debug log and error messages. Threat model: README.md "Shared folders".
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from pathlib import Path
from typing import Any

from machine.errors import DriverError

MECHANISM = "smb"


def account_for(name: str, vm_dir: str) -> str:
    """A local account name (Windows: at most 20 characters) unique to this machine's VM folder."""
    return "machine-" + hashlib.sha256(f"{name}\0{vm_dir}".lower().encode()).hexdigest()[:12]


def new_password() -> str:
    """Random, and meets Windows' complexity rule (upper, lower, digit, symbol); no ',' (CIFS mount options)."""
    return secrets.token_urlsafe(24) + "-Aa1"


def wanted(shares: list[dict[str, Any]]) -> list[list[Any]]:
    return [[s["tag"], s["host"], bool(s.get("ro"))] for s in shares]


def in_sync(data: dict[str, Any], shares: list[dict[str, Any]]) -> bool:
    return ((data.get("smb") or {}).get("shares") or []) == wanted(shares)


def sync(driver: Any) -> None:
    """Make the host's SMB shares of this machine exactly ctx.shares and write what the guest needs (address,
    share name, account, password) into the seed. Removes them all when there are none."""
    ctx, data = driver.ctx, driver.data
    account = account_for(ctx.name, data["vm_dir"])
    prefix = account + "-"
    if not ctx.shares:
        if data.get("smb"):
            unshare(driver)
        return
    password = new_password()
    data["smb"] = {"account": account, "prefix": prefix, "shares": []}  # remove() cleans up from here on
    data["share_mechanism"] = MECHANISM
    answer = _call(driver, password, "smb-account", account=account, password=password, prefix=prefix,
                   switch=data["switch"])
    addresses = [a for a in answer.get("addresses") or [] if a and ":" not in a]
    if not addresses:
        raise DriverError(f"The Hyper-V host has no IPv4 address on switch {data['switch']!r}, so the guest cannot "
                          "reach its SMB shares",
                          "Give the host an address on that switch (allow the management OS to share the adapter), "
                          "or create the machine with --no-share.")
    entries = []
    for s in ctx.shares:
        name = f"{prefix}{s['tag']}$"
        driver.runner().call("smb-share", account=account, name=name, path=s["host"], read_only=bool(s.get("ro")))
        entries.append({"tag": s["tag"], "path": s["guest"], "ro": bool(s.get("ro")),
                        "cifs": {"unc": f"//{addresses[0]}/{name}", "user": account, "password": password}})
    data["smb"] = {"account": account, "prefix": prefix, "address": addresses[0], "shares": wanted(ctx.shares)}
    from machine.provision.seediso import replace_shares

    replace_shares(Path(ctx.seed_path), entries)


def unshare(driver: Any) -> None:
    smb = driver.data.get("smb") or {}
    if smb.get("account"):
        driver.runner().call("smb-unshare", account=smb["account"], prefix=smb["prefix"])
    driver.data.pop("smb", None)
    driver.data.pop("share_mechanism", None)


def replace_seed_copy(driver: Any) -> None:
    """After a re-sync on a created VM: the seed in the VM's folder (its DVD 1:1) gets the new content."""
    from . import isotransfer
    from .runner import LocalRunner

    seed = Path(driver.ctx.seed_path)
    dest = driver.data["vm_dir"] + "\\seed.iso"
    if isinstance(driver.runner(), LocalRunner):
        shutil.copyfile(seed, dest)
    else:
        isotransfer.upload(driver.runner(), seed, dest)


def _call(driver: Any, secret: str, op: str, **values: Any) -> Any:
    """A script call whose values hold the password: the runner masks it in what it logs and in its errors."""
    runner = driver.runner()
    saved = runner.secrets
    runner.secrets = (*saved, secret)
    try:
        return runner.call(op, **values)
    finally:
        runner.secrets = saved
