"""Ed25519 key pairs in OpenSSH format (cryptography): the machine's login key and the guest's host key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from machine.atomicfile import write_atomic


@dataclass(frozen=True)
class KeyPair:
    private: str  # OpenSSH private key (PEM-like text)
    public: str  # "ssh-ed25519 BASE64 comment"


def new_ed25519(comment: str) -> KeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private, f"{public} {comment}".strip())


def write_keypair(path: Path, pair: KeyPair) -> None:
    """`path` (0600) and `path`.pub (0644)."""
    write_atomic(path, pair.private, mode=0o600)
    write_atomic(path.with_name(path.name + ".pub"), pair.public + "\n", mode=0o644)


def ensure_login_key(path: Path, comment: str) -> str:
    """The machine's own login key at `path`, made if missing; returns the public line."""
    pub = path.with_name(path.name + ".pub")
    if path.exists() and pub.exists():
        return pub.read_text().strip()
    pair = new_ed25519(comment)
    write_keypair(path, pair)
    return pair.public


def public_from_private(path: Path) -> str:
    """The OpenSSH public line of any private key file cryptography reads (OpenSSH or PEM)."""
    data = path.read_bytes()
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except ValueError:
        key = serialization.load_pem_private_key(data, password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,  # type: ignore[union-attr]
                                         serialization.PublicFormat.OpenSSH).decode()
