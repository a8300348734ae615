"""Signing keys generated at run time (never committed): service tokens and auth's JWT key."""

import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["ed25519_pem", "load_or_create_key", "load_or_create_secret"]


def ed25519_pem() -> str:
    """A fresh Ed25519 private key in PKCS#8 PEM."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def load_or_create_key(path: Path) -> str:
    """The key stored at ``path``, created (mode 0600) on first use."""
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ed25519_pem()
    path.write_text(pem)
    path.chmod(0o600)
    return pem


def load_or_create_secret(path: Path, *, nbytes: int = 32) -> str:
    """A random URL-safe secret stored at ``path`` (mode 0600), created on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    path.write_text(value)
    path.chmod(0o600)
    return value
