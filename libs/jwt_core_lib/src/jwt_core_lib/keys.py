"""Ed25519 signing keys, their public JWKs and the JWKS document.

EdDSA over Ed25519 is the one algorithm of the platform: small keys, fast
verification, no parameter choices to get wrong. The ``kid`` is the RFC 7638
thumbprint of the public key, so it is stable and needs no bookkeeping.
"""

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALGORITHM",
    "SigningKey",
    "jwks_document",
    "key_id",
    "public_key_from_jwk",
    "public_key_from_x",
    "public_x",
]

ALGORITHM = "EdDSA"

_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _thumbprint(x: str) -> str:
    # RFC 7638: members in lexicographic order, no whitespace.
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


class SigningKey:
    """An Ed25519 private key with its ``kid``."""

    def __init__(self, private_key: Ed25519PrivateKey, kid: str | None = None) -> None:
        self.private_key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._x = _b64url(raw)
        self.kid = kid or _thumbprint(self._x)

    @property
    def x(self) -> str:
        """The public key as the JWK ``x`` value (base64url, no padding, 32 raw bytes)."""
        return self._x

    @classmethod
    def generate(cls, kid: str | None = None) -> "SigningKey":
        """A fresh random key (tests, ephemeral development keys)."""
        return cls(Ed25519PrivateKey.generate(), kid)

    @classmethod
    def from_pem(cls, pem: str | bytes, kid: str | None = None) -> "SigningKey":
        """Load a PKCS#8 PEM Ed25519 private key (unencrypted)."""
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the signing key must be an Ed25519 private key")
        return cls(key, kid)

    def to_pem(self) -> str:
        """The private key as unencrypted PKCS#8 PEM."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (RFC 8037)."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self._x,
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey(kid={self.kid!r})"


def jwks_document(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, str]]]:
    """``/.well-known/jwks.json``: the current key first, then keys still being retired."""
    return {"keys": [key.public_jwk() for key in keys]}


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    """Load an Ed25519 public key from its JWK; anything else is refused."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("only OKP/Ed25519 keys are accepted")
    if jwk.get("alg", ALGORITHM) != ALGORITHM or jwk.get("use", "sig") != "sig":
        raise ValueError("the key is not an EdDSA signing key")
    return public_key_from_x(str(jwk["x"]))


def public_key_from_x(x: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its JWK ``x`` value (base64url of the 32 raw bytes)."""
    if len(x) != 43 or not set(x) <= _B64URL:
        raise ValueError("an Ed25519 public key is 32 bytes in base64url without padding")
    raw = _b64url_decode(x)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_x(public_key: Ed25519PublicKey) -> str:
    """The JWK ``x`` value of a public key (base64url, no padding)."""
    return _b64url(
        public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def key_id(public_key: Ed25519PublicKey) -> str:
    """The ``kid`` of a public key: its RFC 7638 thumbprint (what :class:`SigningKey` uses)."""
    return _thumbprint(public_x(public_key))
