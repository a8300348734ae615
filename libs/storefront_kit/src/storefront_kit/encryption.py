"""Personal fields encrypted at rest (AES-GCM, envelope keys) and blind indexes.

Envelope encryption: every value gets a fresh random 256-bit *data key*; the value is
sealed with it (AES-GCM), and the data key is sealed (AES-GCM again) with a
*key-encryption key* from the service's settings. The stored token carries everything
needed to read it back except the key-encryption key itself::

    0x01 | len(key id) | key id                     (the header)
    | wrap nonce 12 | wrapped data key 32 | tag 16  (the data key, sealed with the KEK)
    | nonce 12 | ciphertext | tag 16               (the value, sealed with the data key)

The key id names the key-encryption key that wrapped the data key, so a
:class:`KeyRing` holding the old and the new key reads every token during a rotation,
while new tokens are sealed with the active key. Both seals bind the header and a
*context* (``"user_account.phone"``) as associated data: a token copied into another
column, or a changed key id, fails to open like any tampered byte.

A :class:`BlindIndex` is a keyed HMAC-SHA256 of a normalised value (and its context),
stored next to the ciphertext for equality lookups (``WHERE phone_index = :digest``)
and unique constraints; without the index key it cannot be recomputed from a guess.

Errors (all :class:`FieldCryptoError`, a :class:`ValueError`)::

    FieldCryptoError
    ├── UnknownKeyId       the token names a key the ring does not hold
    └── TamperedValue      malformed token, wrong context or failed authentication

This module reads no configuration: keys are passed in. :class:`CipherSlot` holds a
service's cipher and index for SQLAlchemy column types (:class:`EncryptedText`,
:class:`EncryptedInt`, :class:`EncryptedJSON`), filled when the service starts.
"""

import base64
import binascii
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "KEY_BYTES",
    "BlindIndex",
    "CipherSlot",
    "EncryptedInt",
    "EncryptedJSON",
    "EncryptedText",
    "FieldCipher",
    "FieldCryptoError",
    "KeyRing",
    "TamperedValue",
    "UnknownKeyId",
    "decode_key",
    "normalise",
]

#: Length of every key here (AES-256, HMAC-SHA256 key).
KEY_BYTES = 32
_VERSION = 1
_NONCE = 12
_TAG = 16
_WRAPPED = _NONCE + KEY_BYTES + _TAG
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


class FieldCryptoError(ValueError):
    """A token could not be read (base of this module's errors)."""


class UnknownKeyId(FieldCryptoError):
    """The token was sealed with a key the ring does not hold (dropped too early?)."""


class TamperedValue(FieldCryptoError):
    """The token is malformed, belongs to another context, or was altered."""


def decode_key(text: str) -> bytes:
    """A 32-byte key from its base64 (standard or URL-safe) text."""
    cleaned = text.strip()
    try:
        raw = base64.b64decode(
            cleaned.replace("-", "+").replace("_", "/") + "=" * (-len(cleaned) % 4),
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a key must be {KEY_BYTES} bytes (base64 of 32 random bytes)")
    return raw


class KeyRing:
    """Key-encryption keys by id; the active one seals, any of them opens."""

    def __init__(self, keys: Mapping[str, bytes], *, active: str) -> None:
        for key_id, key in keys.items():
            if not KEY_ID.match(key_id):
                raise ValueError(f"key id {key_id[:40]!r}: 1-32 of A-Z a-z 0-9 . _ -")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r}: must be {KEY_BYTES} bytes")
        if active not in keys:
            raise ValueError(f"the active key id {active[:40]!r} is not in the ring")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_id = active

    @classmethod
    def from_text(cls, keys: Mapping[str, str], *, active: str) -> "KeyRing":
        """A ring from ``{key id: base64 key}`` (as settings hold it)."""
        decoded = {}
        for key_id, text in keys.items():
            try:
                decoded[key_id] = decode_key(text)
            except ValueError as exc:
                raise ValueError(f"key {key_id[:40]!r}: {exc}") from None
        return cls(decoded, active=active)

    @property
    def ids(self) -> frozenset[str]:
        """Every key id the ring can open."""
        return frozenset(self._keys)

    def aead(self, key_id: str) -> AESGCM:
        """The cipher of one key (:class:`UnknownKeyId` when absent)."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyId(f"no key {key_id!r} in the ring") from None


def _header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return bytes([_VERSION, len(raw)]) + raw


class FieldCipher:
    """Seals and opens field values with envelope keys from a :class:`KeyRing`."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    @property
    def active_prefix(self) -> bytes:
        """The first bytes of every token the active key seals (for SQL rotation filters)."""
        return _header(self.ring.active_id)

    def encrypt(self, plaintext: bytes, *, context: str) -> bytes:
        """A new token for ``plaintext`` under the active key (random data key and nonces)."""
        header = _header(self.ring.active_id)
        aad = header + context.encode()
        data_key = AESGCM.generate_key(bit_length=256)
        wrap_nonce, nonce = os.urandom(_NONCE), os.urandom(_NONCE)
        wrapped = self.ring.aead(self.ring.active_id).encrypt(wrap_nonce, data_key, aad)
        sealed = AESGCM(data_key).encrypt(nonce, plaintext, aad)
        return header + wrap_nonce + wrapped + nonce + sealed

    def decrypt(self, token: bytes, *, context: str) -> bytes:
        """The plaintext of ``token``; :class:`UnknownKeyId` or :class:`TamperedValue`."""
        key_id, header = self._parse(token)
        body = token[len(header) :]
        if len(body) < _WRAPPED + _NONCE + _TAG:
            raise TamperedValue("token too short")
        aad = header + context.encode()
        aead = self.ring.aead(key_id)
        try:
            data_key = aead.decrypt(body[:_NONCE], body[_NONCE:_WRAPPED], aad)
            start = _WRAPPED + _NONCE
            return AESGCM(data_key).decrypt(body[_WRAPPED:start], body[start:], aad)
        except InvalidTag:
            raise TamperedValue("the token does not authenticate") from None

    def key_id_of(self, token: bytes) -> str:
        """The id of the key that sealed ``token`` (no decryption)."""
        return self._parse(token)[0]

    def needs_rotation(self, token: bytes) -> bool:
        """True when ``token`` was sealed with another key than the active one."""
        return not token.startswith(self.active_prefix)

    def reencrypt(self, token: bytes, *, context: str) -> bytes:
        """The same plaintext sealed anew under the active key."""
        return self.encrypt(self.decrypt(token, context=context), context=context)

    def encrypt_text(self, value: str, *, context: str) -> bytes:
        """:meth:`encrypt` of UTF-8 text."""
        return self.encrypt(value.encode(), context=context)

    def decrypt_text(self, token: bytes, *, context: str) -> str:
        """:meth:`decrypt` to UTF-8 text."""
        return self.decrypt(token, context=context).decode()

    @staticmethod
    def _parse(token: bytes) -> tuple[str, bytes]:
        if len(token) < 3 or token[0] != _VERSION:
            raise TamperedValue("not a field token (unknown version)")
        size = token[1]
        raw = bytes(token[2 : 2 + size])
        try:
            key_id = raw.decode("ascii")
        except UnicodeDecodeError:
            raise TamperedValue("malformed key id") from None
        if len(raw) != size or not KEY_ID.match(key_id):
            raise TamperedValue("malformed key id")
        return key_id, _header(key_id)


def normalise(value: str) -> str:
    """The form a value is indexed under: Unicode NFKC, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", value).strip().casefold()


class BlindIndex:
    """Keyed HMAC-SHA256 digests of normalised values, for equality lookups."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a blind-index key must be {KEY_BYTES} bytes")
        self._key = key

    def digest(self, value: str | int, *, context: str) -> bytes:
        """The 32-byte index of ``value`` in ``context`` (two contexts never collide)."""
        message = context.encode() + b"\x00" + normalise(str(value)).encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()


@dataclass(eq=False)  # hashed by identity: column types key SQLAlchemy's cache on it
class CipherSlot:
    """Where a service's column types find its cipher and index.

    A service keeps one slot at module level. Its app and CLI :meth:`install` the keys
    of the settings they run with; code that runs without either (migrations, scripts)
    gets them from ``loader`` on first use. With neither, an encrypted column refuses
    to work rather than write plaintext.
    """

    name: str
    loader: Callable[[], tuple[FieldCipher, BlindIndex]] | None = None
    _cipher: FieldCipher | None = None
    _index: BlindIndex | None = None

    def install(self, cipher: FieldCipher, index: BlindIndex) -> None:
        """Use ``cipher`` and ``index`` from now on."""
        self._cipher, self._index = cipher, index

    def _ensure(self) -> tuple[FieldCipher, BlindIndex]:
        if self._cipher is None or self._index is None:
            if self.loader is None:
                raise RuntimeError(f"{self.name}: field encryption keys are not installed")
            self.install(*self.loader())
        assert self._cipher is not None
        assert self._index is not None
        return self._cipher, self._index

    @property
    def cipher(self) -> FieldCipher:
        """The installed cipher."""
        return self._ensure()[0]

    @property
    def index(self) -> BlindIndex:
        """The installed blind index."""
        return self._ensure()[1]


class _Encrypted(TypeDecorator[Any]):
    """A ``bytea`` column holding a token; Python sees the plaintext value."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, slot: CipherSlot, context: str) -> None:
        super().__init__()
        self.slot = slot
        self.context = context

    def _dump(self, value: Any) -> bytes:
        raise NotImplementedError

    def _load(self, raw: bytes) -> Any:
        raise NotImplementedError

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return self.slot.cipher.encrypt(self._dump(value), context=self.context)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self._load(self.slot.cipher.decrypt(bytes(value), context=self.context))


class EncryptedText(_Encrypted):
    """Text encrypted at rest (a phone number)."""

    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return str(value).encode()

    def _load(self, raw: bytes) -> Any:
        return raw.decode()


class EncryptedInt(_Encrypted):
    """An integer encrypted at rest (a Telegram chat id)."""

    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return str(int(value)).encode()

    def _load(self, raw: bytes) -> Any:
        return int(raw)


class EncryptedJSON(_Encrypted):
    """A JSON document encrypted at rest (a shipping address)."""

    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def _load(self, raw: bytes) -> Any:
        return orjson.loads(raw)
