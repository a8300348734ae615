"""``make env``: write ``.env`` with fresh secrets, from ``.env.example``, once.

``.env`` becomes ``.env.example`` with every secret in :data:`SECRETS` replaced by a
freshly generated value; every other line (settings, comments) is kept as documented.
An existing ``.env`` is never touched: it may hold the only copy of a key that signed
live tokens or a database password already in use. It is only checked for secrets
still holding a placeholder, which are named.

Standard library only (plus ``cryptography`` when importable, else the ``openssl``
command line for Ed25519 keys), so a fresh clone needs no virtualenv to run it:
``python3 scripts/stack/src/storefront_stack/envfile.py``.

To add a secret, add a row to :data:`SECRETS`. A row's generator receives the values
generated before it, so a derived value (a public key, a JSON allowlist of callers'
public keys) is a row placed after the rows it derives from.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

if not __package__:  # run as a file from a fresh clone (`make env`): no virtualenv needed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from storefront_stack.topology import (  # standard library only
    CALLERS,
    FIELD_ENCRYPTION,
    SERVICES,
)

__all__ = [
    "PLACEHOLDERS",
    "SECRETS",
    "Secret",
    "dotenv_quote",
    "ed25519_pem",
    "ed25519_public_b64url",
    "field_key",
    "field_keys_json",
    "generate_secrets",
    "main",
    "placeholder_secrets",
    "render_env",
    "write_env",
]

# Values that mean "not set" (kept in step with storefront_kit.settings.PLACEHOLDER_SECRETS).
PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "placeholder"})
_LINE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
# A setting .env.example documents but leaves unset (its callers' keys: none by default).
_UNSET = re.compile(r"^# (?P<name>[A-Z][A-Z0-9_]*)=$")


def ed25519_pem() -> str:
    """A fresh Ed25519 private key, PKCS#8 PEM."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        return _openssl(["genpkey", "-algorithm", "ed25519"]).decode()
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def ed25519_public_b64url(private_pem: str) -> str:
    """The raw 32-byte public key of ``private_pem``, base64url without padding."""
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        der = _openssl(["pkey", "-pubout", "-outform", "DER"], stdin=private_pem)
        raw = der[-32:]  # SubjectPublicKeyInfo of Ed25519: a fixed 12-byte prefix
    else:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _openssl(args: list[str], *, stdin: str | None = None) -> bytes:
    binary = shutil.which("openssl")
    if binary is None:
        raise SystemExit("make env needs the `cryptography` package or the `openssl` command")
    result = subprocess.run(
        [binary, *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        check=True,
    )
    return result.stdout


Generated = Mapping[str, str]


@dataclass(frozen=True)
class Secret:
    """One secret ``make env`` generates: its variable and how to make a value."""

    name: str
    generate: Callable[[Generated], str]
    why: str


def _hex(nbytes: int) -> Callable[[Generated], str]:
    return lambda _: secrets.token_hex(nbytes)


def _urlsafe(nbytes: int) -> Callable[[Generated], str]:
    return lambda _: secrets.token_urlsafe(nbytes)


def _callers_of(service: str) -> Callable[[Generated], str]:
    """JSON of ``service``'s allowed callers' public keys, from their generated keys."""

    def callers(generated: Generated) -> str:
        keys = {
            caller: [ed25519_public_b64url(generated[f"{_prefix(caller)}SERVICE_TOKEN_KEY"])]
            for caller in CALLERS.get(service, ())
        }
        return json.dumps(keys, sort_keys=True)

    return callers


def _prefix(service: str) -> str:
    return service.upper().replace("-", "_") + "_"


#: The id of the first field-encryption key (the settings' default ``ENCRYPTION_KEY_ID``).
INITIAL_KEY_ID = "k1"


def field_key() -> str:
    """A fresh 32-byte key, base64: a field-encryption or blind-index key."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def field_keys_json(key: str | None = None) -> str:
    """``<PREFIX>_ENCRYPTION_KEYS``: a ring of one key, id :data:`INITIAL_KEY_ID`."""
    return json.dumps({INITIAL_KEY_ID: key or field_key()})


#: Every secret ``make env`` writes, in order (a derived one after its sources): each
#: service's own service-token key, then each callee's list of its callers' public keys.
SECRETS: tuple[Secret, ...] = (
    *(
        Secret(
            f"{_prefix(s.name)}SERVICE_TOKEN_KEY",
            lambda _: ed25519_pem(),
            f"Ed25519 key {s.name} signs its service-to-service tokens with",
        )
        for s in SERVICES
    ),
    *(
        Secret(
            f"{_prefix(callee)}SERVICE_TOKEN_CALLERS",
            _callers_of(callee),
            f"public keys of the services allowed to call {callee}",
        )
        for callee in sorted(CALLERS)
    ),
    Secret(
        "AUTH_JWT_SIGNING_KEY", lambda _: ed25519_pem(), "Ed25519 key auth signs user tokens with"
    ),
    Secret("AUTH_OTP_PEPPER", _urlsafe(32), "HMAC key OTP codes are stored under"),
    Secret(
        "NOTIFICATIONS_TELEGRAM_WEBHOOK_SECRET",
        _urlsafe(32),
        "the X-Telegram-Bot-Api-Secret-Token of the bot's webhook",
    ),
    *(
        secret
        for name in FIELD_ENCRYPTION
        for secret in (
            Secret(
                f"{_prefix(name)}ENCRYPTION_KEYS",
                lambda _: field_keys_json(),
                f"the key (id {INITIAL_KEY_ID}) {name}'s personal fields are encrypted with",
            ),
            Secret(
                f"{_prefix(name)}BLIND_INDEX_KEY",
                lambda _: field_key(),
                f"HMAC key of {name}'s lookup digests of personal fields",
            ),
        )
    ),
    # Hex: it goes into database URLs unescaped.
    Secret("POSTGRES_PASSWORD", _hex(24), "password of compose's `storefront` PostgreSQL user"),
)


def dotenv_quote(value: str) -> str:
    """``value`` as one dotenv line's value: bare, single-quoted, or double-quoted with ``\\n``.

    Both readers of ``.env`` (compose's and python-dotenv's) expand ``\\n`` inside
    double quotes. A ``$`` is doubled for compose's interpolation (generated values
    never hold one).
    """
    if re.fullmatch(r"[A-Za-z0-9_.:/+=-]*", value):
        return value
    if "\n" not in value and "'" not in value:
        return f"'{value}'"  # literal in both readers (a JSON list of callers' keys)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("$", "$$") + '"'


def generate_secrets(table: tuple[Secret, ...] = SECRETS) -> dict[str, str]:
    """A fresh value for every row of ``table``."""
    generated: dict[str, str] = {}
    for secret in table:
        generated[secret.name] = secret.generate(generated)
    return generated


def render_env(example: str, values: Mapping[str, str], *, now: datetime | None = None) -> str:
    """``example`` with each ``NAME=`` line of ``values`` set; rows it lacks are appended."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# Written by `make env` on {stamp}: .env.example with fresh secrets.",
        "# Keep it private (git ignores it); `make env` never overwrites it.",
        "",
    ]
    pending = dict(values)
    for line in example.splitlines():
        match = _LINE.match(line) or _UNSET.match(line)
        if match and match["name"] in pending:
            line = f"{match['name']}={dotenv_quote(pending.pop(match['name']))}"
        out.append(line)
    if pending:
        out += ["", "# Generated secrets .env.example does not list yet."]
        out += [f"{name}={dotenv_quote(value)}" for name, value in pending.items()]
    return "\n".join(out) + "\n"


def placeholder_secrets(env_text: str, table: tuple[Secret, ...] = SECRETS) -> list[str]:
    """Names of ``table``'s secrets that ``env_text`` leaves unset or at a placeholder."""
    found: dict[str, str] = {}
    for line in env_text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            found[match["name"]] = match["value"].strip().strip("'\"")
    return [s.name for s in table if found.get(s.name, "").lower() in PLACEHOLDERS]


def write_env(target: Path, example: Path) -> bool:
    """Write ``target`` from ``example`` with fresh secrets; False when it existed."""
    if target.exists():
        return False
    text = render_env(example.read_text(), generate_secrets())
    # Created private: it holds signing keys and the database password.
    target.touch(mode=0o600, exist_ok=False)
    target.write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line of ``make env``."""
    root = Path(__file__).resolve().parents[4]
    parser = argparse.ArgumentParser(prog="make env", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=root / ".env")
    parser.add_argument("--example", type=Path, default=root / ".env.example")
    args = parser.parse_args(argv)
    target: Path = args.output
    if write_env(target, args.example):
        print(f"wrote {target} with fresh secrets: {', '.join(s.name for s in SECRETS)}")
        return 0
    stale = placeholder_secrets(target.read_text())
    if stale:
        print(
            f"{target} exists and was left alone, but these still hold a placeholder: "
            f"{', '.join(stale)}. Set them, or move {target} away and run `make env` again.",
            file=sys.stderr,
        )
        return 1
    print(f"{target} exists; left alone (it may hold keys in use). Nothing to do.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
