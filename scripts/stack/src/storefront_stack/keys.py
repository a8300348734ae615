"""Signing keys generated at run time (never committed): service tokens and auth's JWT key.

Service tokens: every service gets its own Ed25519 key (``<PREFIX>_SERVICE_TOKEN_KEY``)
and the public keys of the services that call it (``<PREFIX>_SERVICE_TOKEN_CALLERS``,
see :data:`~storefront_stack.topology.CALLERS`). :func:`service_token_env` makes both
for a set of services (``make run``, and ``.env`` for compose).
"""

import base64
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from jwt_core_lib import (
    ServiceTokenMinter,
    SigningKey,
    StaticKeySource,
    TokenIssuer,
    TokenVerifier,
)
from storefront_stack.envfile import INITIAL_KEY_ID, ed25519_pem, field_key, field_keys_json
from storefront_stack.topology import CALLERS, FIELD_ENCRYPTION, SERVICES

SERVICE_NAMES = tuple(service.name for service in SERVICES)

if TYPE_CHECKING:
    from storefront_kit.security import ServiceSecurity

__all__ = [
    "USER_ISSUER",
    "KeyRing",
    "ServiceKeys",
    "ed25519_pem",
    "field_encryption_env",
    "load_or_create_key",
    "load_or_create_secret",
    "rotate_field_keys",
    "service_token_env",
    "service_token_keys_env",
    "write_service_keys",
]


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


def _prefix(service: str) -> str:
    return service.upper().replace("-", "_") + "_"


def service_token_keys_env(
    keys: Mapping[str, str], *, callers: Mapping[str, Iterable[str]] = CALLERS
) -> dict[str, str]:
    """Env vars of every service in ``keys`` (name -> its PEM): own key plus its callers' map.

    A callee's map lists only those of its callers that are in ``keys``; a service that
    nobody calls gets ``{}``.
    """
    public = {name: SigningKey.from_pem(pem).x for name, pem in keys.items()}
    env: dict[str, str] = {}
    for name, pem in keys.items():
        allowed = {c: [public[c]] for c in callers.get(name, ()) if c in public}
        env[f"{_prefix(name)}SERVICE_TOKEN_KEY"] = pem
        env[f"{_prefix(name)}SERVICE_TOKEN_CALLERS"] = json.dumps(allowed, sort_keys=True)
    return env


def service_token_env(
    services: Iterable[str] = SERVICE_NAMES,
    *,
    key_for: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """Fresh service-token keys for ``services``: env var name -> value, for all of them.

    For each service ``<PREFIX>_SERVICE_TOKEN_KEY`` (its own private key, PEM) and
    ``<PREFIX>_SERVICE_TOKEN_CALLERS`` (JSON: caller -> [public key]). ``key_for(name)``
    supplies a service's PEM instead (``make run`` keeps them under ``.stack/run/keys``).
    Hand each process only its own prefix's variables.
    """
    make = key_for or (lambda _name: ed25519_pem())
    return service_token_keys_env({name: make(name) for name in services})


def field_encryption_env(
    services: Iterable[str] = FIELD_ENCRYPTION,
    *,
    key_for: Callable[[str, str], str] | None = None,
) -> dict[str, str]:
    """Field-encryption keys of ``services``: a ring of one key and a blind-index key each.

    ``key_for(service, purpose)`` supplies a base64 key (``make run`` keeps them under
    ``.stack/run/keys``); fresh ones otherwise. Each process gets only its own prefix's.
    """
    make = key_for or (lambda _service, _purpose: field_key())
    env: dict[str, str] = {}
    for name in services:
        prefix = _prefix(name)
        env[f"{prefix}ENCRYPTION_KEYS"] = field_keys_json(make(name, "encryption"))
        env[f"{prefix}ENCRYPTION_KEY_ID"] = INITIAL_KEY_ID
        env[f"{prefix}BLIND_INDEX_KEY"] = make(name, "blind-index")
    return env


def rotate_field_keys(
    service: str,
    database_url: str,
    *,
    old: bytes,
    new: bytes,
    blind_index_key: bytes,
    batch_size: int,
) -> subprocess.CompletedProcess[str]:
    """``python -m <service's package> rotate-keys`` over ``database_url``: rows sealed
    with the key ``old`` re-sealed with ``new`` (both in the ring, ``new`` active), in
    batches of ``batch_size``. What it printed; it is not checked."""
    prefix = _prefix(service)
    package = next(s.package for s in SERVICES if s.name == service)

    def b64(key: bytes) -> str:
        return base64.b64encode(key).decode()

    env = {
        **os.environ,
        f"{prefix}DATABASE_URL": database_url,
        f"{prefix}ENCRYPTION_KEYS": json.dumps({"old": b64(old), "new": b64(new)}),
        f"{prefix}ENCRYPTION_KEY_ID": "new",
        f"{prefix}BLIND_INDEX_KEY": b64(blind_index_key),
    }
    command = [sys.executable, "-m", package, "rotate-keys", "--batch-size", str(batch_size)]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def write_service_keys(directory: Path, services: Iterable[str] = SERVICE_NAMES) -> list[Path]:
    """Fresh keys as files: ``<service>.pem`` (mode 0600) and ``<service>-callers.json``.

    One ``kubectl create secret generic <service>-service-token --from-file=...`` per
    service then hands each Deployment only its own key (deploy/kubernetes/README.md).
    """
    directory.mkdir(parents=True, exist_ok=True)
    env = service_token_env(services)
    written: list[Path] = []
    for name in services:
        pem, callers = (directory / f"{name}.pem"), (directory / f"{name}-callers.json")
        pem.touch(mode=0o600)
        pem.write_text(env[f"{_prefix(name)}SERVICE_TOKEN_KEY"])
        callers.write_text(env[f"{_prefix(name)}SERVICE_TOKEN_CALLERS"] + "\n")
        written += [pem, callers]
    return written


@dataclass(frozen=True)
class ServiceKeys:
    """Tests' stand-in for ``make run``'s keys: one service-token key per service."""

    keys: Mapping[str, SigningKey]

    @classmethod
    def generate(cls, services: Iterable[str] = SERVICE_NAMES) -> "ServiceKeys":
        """A fresh key for each of ``services``."""
        return cls({name: SigningKey.generate() for name in services})

    def __getitem__(self, service: str) -> SigningKey:
        return self.keys[service]

    def security(self, service: str, *, user_verifier: TokenVerifier) -> "ServiceSecurity":
        """``service``'s security signing with its own key and knowing every other service.

        Each other service is a known caller here, so that a test can show a route's
        allowlist answering 403 to a caller that is valid but not accepted there.
        """
        from storefront_kit.security import ServiceSecurity

        return ServiceSecurity.create(
            service_name=service,
            service_key=self.keys[service],
            callers={name: [key] for name, key in self.keys.items() if name != service},
            user_verifier=user_verifier,
        )

    def token(self, caller: str, audience: str) -> str:
        """A service token from ``caller`` (its own key, ``iss`` = caller) for ``audience``."""
        issuer = TokenIssuer(signing_key=self.keys[caller], issuer=caller)
        return ServiceTokenMinter(issuer=issuer, service_name=caller).token_for(audience)

    def env(self, service: str) -> dict[str, str]:
        """The service-token variables of one service process (as ``make run`` sets them)."""
        prefix = _prefix(service)
        everything = service_token_keys_env({n: k.to_pem() for n, k in self.keys.items()})
        return {name: value for name, value in everything.items() if name.startswith(prefix)}


#: The ``iss`` of user tokens (auth signs them).
USER_ISSUER = "storefront-auth"


@dataclass(frozen=True)
class KeyRing:
    """A service test's keys: auth's user-token key and every service's service-token key.

    ``service`` is the service under test and ``caller`` the one that usually calls it
    (the defaults of :meth:`security` and :meth:`service_token`); a user token's subject
    is ``default_subject``, or a new id per token when that is None.
    """

    service: str
    caller: str
    default_subject: str | None = None
    user_key: SigningKey = field(default_factory=SigningKey.generate)
    services: ServiceKeys = field(default_factory=ServiceKeys.generate)

    def user_verifier(self) -> TokenVerifier:
        """How the service under test checks user tokens: against auth's key."""
        return TokenVerifier(
            key_source=StaticKeySource([self.user_key]), issuer=USER_ISSUER, audience="storefront"
        )

    def security(self, service: str | None = None) -> "ServiceSecurity":
        """What the kit would build for ``service`` (the service under test by default)."""
        return self.services.security(service or self.service, user_verifier=self.user_verifier())

    def user_token(self, *roles: str, subject: str | None = None) -> str:
        """A five-minute access token with ``roles``, signed as auth would."""
        return TokenIssuer(signing_key=self.user_key, issuer=USER_ISSUER).issue(
            subject=subject or self.default_subject or str(uuid.uuid4()),
            audience="storefront",
            ttl=timedelta(minutes=5),
            roles=roles,
        )

    def service_token(self, caller: str | None = None, audience: str | None = None) -> str:
        """A service token from ``caller`` for ``audience`` (by default: the usual call)."""
        return self.services.token(caller or self.caller, audience or self.service)
