"""NoCloud seed ISO builder (pure Python, pycdlib).

The seed is an ISO9660 volume labelled `cidata` (Joliet + Rock Ridge, so names keep their case)
holding `meta-data`, `user-data` and optionally `network-config`. Every file is JSON (user-data
behind a `#cloud-config` line): JSON is valid YAML, so stock cloud-init reads it, and our own guest
OS parses it with jq.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from machine.atomicfile import write_atomic
from machine.errors import ConfigError

VOLUME_ID = "cidata"
CLOUD_CONFIG_HEADER = "#cloud-config\n"
SHARES_KEY = "machine_shares"

# ISO9660 level-1 name, Rock Ridge / Joliet name
_ISO_NAMES = {
    "meta-data": "/META_DAT.;1",
    "user-data": "/USER_DAT.;1",
    "network-config": "/NETWORK_.;1",
}

_HOSTNAME_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PERM_RE = re.compile(r"^0?[0-7]{3,4}$")
_HOST_KEY_RE = re.compile(r"^(rsa|ecdsa|ed25519)_(private|public|certificate)$")


@dataclass(frozen=True)
class SeedFile:
    """A file cloud-init writes into the guest (`write_files`), base64 encoded in the seed."""

    path: str
    content: bytes | str
    permissions: str = "0644"
    owner: str | None = None

    def to_cloud_config(self) -> dict[str, str]:
        p = PurePosixPath(self.path)
        if not p.is_absolute() or ".." in p.parts:
            raise ConfigError(
                f"seed file path {self.path!r} must be an absolute guest path",
                "Use a POSIX path such as /etc/machine/config.json.",
            )
        if not _PERM_RE.match(self.permissions):
            raise ConfigError(
                f"seed file {self.path}: permissions {self.permissions!r} are not an octal mode",
                'Write permissions as a string such as "0644".',
            )
        data = self.content.encode() if isinstance(self.content, str) else bytes(self.content)
        entry = {
            "path": str(p),
            "encoding": "b64",
            "content": base64.b64encode(data).decode("ascii"),
            "permissions": self.permissions.rjust(4, "0"),
        }
        if self.owner:
            entry["owner"] = self.owner
        return entry


def meta_data(instance_id: str, hostname: str) -> dict[str, str]:
    """The NoCloud meta-data document."""
    return {"instance-id": instance_id, "local-hostname": hostname}


def user_data(
    *,
    hostname: str,
    authorized_keys: Iterable[str],
    files: Iterable[SeedFile] = (),
    host_keys: Mapping[str, str] | None = None,
    user: str = "root",
    shares: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The cloud-config document (as a dict) that `build_seed` writes to user-data. `shares` (our machine OS
    only: key `machine_shares`) are the folders the guest mounts at every boot: {"tag", "path", "ro"}."""
    keys = [k.strip() for k in authorized_keys if k and k.strip()]
    cfg: dict[str, Any] = {
        "hostname": hostname,
        "preserve_hostname": False,
        "ssh_pwauth": False,
        "ssh_authorized_keys": keys,
        "write_files": [f.to_cloud_config() for f in files],
    }
    mounts = [dict(x) for x in shares]
    if mounts:
        cfg[SHARES_KEY] = mounts
    if user == "root":
        cfg["disable_root"] = False
    else:
        cfg["disable_root"] = True
        cfg["users"] = [
            {
                "name": user,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash",
                "groups": ["sudo"],
                "lock_passwd": True,
                "ssh_authorized_keys": keys,
            }
        ]
    if host_keys:
        bad = sorted(k for k in host_keys if not _HOST_KEY_RE.match(k))
        if bad:
            raise ConfigError(
                f"unknown host key field(s): {', '.join(bad)}",
                "Use names such as ed25519_private and ed25519_public.",
            )
        cfg["ssh_keys"] = {k: v if v.endswith("\n") else v + "\n" for k, v in host_keys.items()}
        # Keep only the keys we pinned: cloud-init would otherwise generate other types whose
        # fingerprints the host does not know.
        cfg["ssh_deletekeys"] = True
        cfg["ssh_genkeytypes"] = []
    return cfg


def render_user_data(cfg: Mapping[str, Any]) -> str:
    """`#cloud-config` followed by the JSON document."""
    return CLOUD_CONFIG_HEADER + json.dumps(cfg, indent=2, sort_keys=True) + "\n"


def _network_doc(network_config: Mapping[str, Any]) -> dict[str, Any]:
    doc = dict(network_config)
    inner = doc.get("network", doc)
    if not isinstance(inner, Mapping):
        raise ConfigError("network-config must be a mapping", "Pass a netplan v2 style dict.")
    version = inner.get("version", 2)
    if version != 2:
        raise ConfigError(
            f"network-config version {version!r} is not supported",
            "Write the network config in version 2 (netplan) format.",
        )
    if "network" not in doc:
        doc.setdefault("version", 2)
    return doc


def _check(instance_id: str, hostname: str, user: str) -> None:
    if not instance_id or any(c.isspace() for c in instance_id):
        raise ConfigError(f"invalid instance-id {instance_id!r}", "Use a non-empty id without spaces.")
    if not _HOSTNAME_RE.match(hostname) or len(hostname) > 253:
        raise ConfigError(
            f"invalid hostname {hostname!r}",
            "Use letters, digits and hyphens (RFC 1123), at most 63 per label.",
        )
    if not _USER_RE.match(user):
        raise ConfigError(f"invalid user name {user!r}", "Use a POSIX user name such as root or debian.")


def render_seed(
    *,
    instance_id: str,
    hostname: str,
    authorized_keys: Iterable[str],
    files: Iterable[SeedFile] = (),
    host_keys: Mapping[str, str] | None = None,
    network_config: Mapping[str, Any] | None = None,
    user: str = "root",
    shares: Iterable[Mapping[str, Any]] = (),
) -> dict[str, bytes]:
    """The seed's files by name (`meta-data`, `user-data`, maybe `network-config`)."""
    _check(instance_id, hostname, user)
    docs = {
        "meta-data": (json.dumps(meta_data(instance_id, hostname), indent=2) + "\n").encode(),
        "user-data": render_user_data(
            user_data(
                hostname=hostname,
                authorized_keys=authorized_keys,
                files=files,
                host_keys=host_keys,
                user=user,
                shares=shares,
            )
        ).encode(),
    }
    if network_config is not None:
        docs["network-config"] = (json.dumps(_network_doc(network_config), indent=2) + "\n").encode()
    return docs


def build_iso(docs: Mapping[str, bytes], volume_id: str = VOLUME_ID) -> bytes:
    """An ISO9660 image (Joliet + Rock Ridge) holding `docs` at its root."""
    import pycdlib  # imported lazily: only seed building needs it

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=volume_id, joliet=3, rock_ridge="1.09")
    try:
        for name, data in docs.items():
            iso_name = _ISO_NAMES.get(name) or "/" + re.sub(r"[^A-Z0-9_]", "_", name.upper())[:8] + ".;1"
            iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def build_seed(path: Path, **seed: Any) -> Path:
    """Write a NoCloud `cidata` seed ISO to `path` atomically (mode 0600: it may hold a host key); `seed` are
    `render_seed`'s keywords.

    `host_keys` takes cloud-init `ssh_keys` fields, e.g. {"ed25519_private": ..., "ed25519_public": ...}
    so the host can pin the guest's host key before first boot. `user` is the login user: "root"
    (sets disable_root: false) or a user cloud-init creates with passwordless sudo.
    """
    docs = render_seed(**seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, build_iso(docs))
    return path


def read_iso(path: Path) -> dict[str, bytes]:
    """The files at the root of a seed ISO this module wrote, by their Rock Ridge names."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        docs: dict[str, bytes] = {}
        for name in ("meta-data", "user-data", "network-config"):
            out = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(out, rr_path="/" + name)
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue
            docs[name] = out.getvalue()
    finally:
        iso.close()
    return docs


def replace_shares(path: Path, shares: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite the seed at `path` with another list of shares (`machine set` on a stopped machine); the rest
    (instance id, keys, files) stays as it was, so the guest does not take it for a new instance."""
    docs = read_iso(path)
    raw = docs.get("user-data", b"").decode()
    body = raw[len(CLOUD_CONFIG_HEADER):] if raw.startswith(CLOUD_CONFIG_HEADER) else raw
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as e:
        raise ConfigError(f"The seed {path} has no JSON user-data ({e.msg})",
                          "Recreate the machine to change its shared folders.") from None
    mounts = [dict(x) for x in shares]
    if mounts:
        doc[SHARES_KEY] = mounts
    else:
        doc.pop(SHARES_KEY, None)
    docs["user-data"] = render_user_data(doc).encode()
    write_atomic(path, build_iso(docs))
