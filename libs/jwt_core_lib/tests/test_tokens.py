"""The verifier accepts good tokens and refuses every known attack on JWTs."""

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jwt_core_lib import (
    SERVICE,
    ExpiredTokenError,
    InvalidTokenError,
    SigningKey,
    StaticKeySource,
    TokenIssuer,
    TokenVerifier,
    UnknownKeyError,
    jwks_document,
    public_key_from_jwk,
)

ISSUER = "storefront-auth"
AUDIENCE = "storefront"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def issuer(key: SigningKey) -> TokenIssuer:
    return TokenIssuer(signing_key=key, issuer=ISSUER)


@pytest.fixture(scope="module")
def verifier(key: SigningKey) -> TokenVerifier:
    return TokenVerifier(
        key_source=StaticKeySource([key]), issuer=ISSUER, audience=AUDIENCE, leeway_s=5
    )


def _token(issuer: TokenIssuer, **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "subject": "user-1",
        "audience": AUDIENCE,
        "ttl": timedelta(minutes=15),
        "roles": ("customer",),
    }
    kwargs.update(overrides)
    return issuer.issue(**kwargs)  # type: ignore[arg-type]


def _claims(**overrides: object) -> dict[str, object]:
    """A customer's valid access-token claims, five minutes to live, with ``overrides``."""
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": "j" * 16,
        "roles": [],
        "token_use": "access",
    }
    claims.update(overrides)
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _forge(token: str, *, header: dict[str, object] | None = None, **claims: object) -> str:
    """Re-encode a token's header/payload, keeping its (now wrong) signature."""
    head, payload, signature = token.split(".")
    head_json = json.loads(_unb64(head))
    head_json.update(header or {})
    payload_json = json.loads(_unb64(payload))
    payload_json.update(claims)
    return ".".join(
        [
            _b64(json.dumps(head_json).encode()),
            _b64(json.dumps(payload_json).encode()),
            signature,
        ]
    )


async def test_a_valid_token_gives_its_claims(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = _token(issuer, roles=("admin", "customer"))
    claims = await verifier.verify(token)
    assert claims.subject == "user-1"
    assert claims.issuer == ISSUER
    assert claims.audience == AUDIENCE
    assert claims.roles == ("admin", "customer")
    assert claims.has_role("admin")
    assert not claims.has_role("moderator")
    assert claims.key_id == issuer.signing_key.kid
    assert len(claims.token_id) >= 16
    assert timedelta(minutes=14) < claims.expires_at - datetime.now(UTC) <= timedelta(minutes=15)
    header = pyjwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": issuer.signing_key.kid, "typ": "JWT"}


async def test_each_token_has_its_own_id(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    first = await verifier.verify(_token(issuer))
    second = await verifier.verify(_token(issuer))
    assert first.token_id != second.token_id


async def test_alg_none_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    good = _token(issuer)
    head, payload, _ = _forge(good, header={"alg": "none"}).split(".")
    with pytest.raises(InvalidTokenError, match="algorithm"):
        await verifier.verify(f"{head}.{payload}.")


async def test_hs256_signed_with_the_public_key_is_refused(
    key: SigningKey, verifier: TokenVerifier
) -> None:
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = _claims(sub="mallory", jti="x" * 16, roles=["admin"])
    # PyJWT itself refuses to HMAC with a PEM key, so build the token by hand.
    import hashlib
    import hmac

    head = _b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidTokenError, match="algorithm"):
        await verifier.verify(f"{head}.{body}.{_b64(mac)}")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"audience": "other-app"}, "audience"),
    ],
)
async def test_wrong_audience_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidTokenError, match=message):
        await verifier.verify(_token(issuer, **overrides))


async def test_wrong_issuer_is_refused(key: SigningKey, verifier: TokenVerifier) -> None:
    token = _token(TokenIssuer(signing_key=key, issuer="evil-auth"))
    with pytest.raises(InvalidTokenError, match="issuer"):
        await verifier.verify(token)


@pytest.mark.parametrize("claim", ["aud", "iss", "exp", "sub", "jti", "iat"])
async def test_a_missing_registered_claim_is_refused(key: SigningKey, claim: str) -> None:
    claims = _claims()
    del claims[claim]
    token = pyjwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
    verifier = TokenVerifier(key_source=StaticKeySource([key]), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


async def test_an_audience_list_is_refused(key: SigningKey) -> None:
    # strict audience: a token valid "for everyone" is valid for no one.
    claims = _claims(aud=[AUDIENCE, "other"])
    token = pyjwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
    verifier = TokenVerifier(key_source=StaticKeySource([key]), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


async def test_expired_token_is_refused_beyond_the_leeway(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=16)
    with pytest.raises(ExpiredTokenError):
        await verifier.verify(_token(issuer, now=past))


async def test_a_token_expired_within_the_leeway_is_accepted(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    # Clocks of two machines differ a little; 5 s leeway covers 2 s of skew.
    just_past = datetime.now(UTC) - timedelta(minutes=15, seconds=2)
    claims = await verifier.verify(_token(issuer, now=just_past))
    assert claims.subject == "user-1"


async def test_not_yet_valid_token_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    later = datetime.now(UTC) + timedelta(minutes=2)
    with pytest.raises(InvalidTokenError, match="not valid yet"):
        await verifier.verify(_token(issuer, not_before=later))


async def test_unknown_kid_is_refused(verifier: TokenVerifier) -> None:
    stranger = TokenIssuer(signing_key=SigningKey.generate(), issuer=ISSUER)
    with pytest.raises(UnknownKeyError):
        await verifier.verify(_token(stranger))


async def test_a_forged_token_reusing_a_known_kid_is_refused(
    key: SigningKey, verifier: TokenVerifier
) -> None:
    forger = TokenIssuer(signing_key=SigningKey.generate(kid=key.kid), issuer=ISSUER)
    with pytest.raises(InvalidTokenError):
        await verifier.verify(_token(forger))


async def test_tampered_payload_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    tampered = _forge(_token(issuer), roles=["admin"], sub="someone-else")
    with pytest.raises(InvalidTokenError):
        await verifier.verify(tampered)


async def test_tampered_signature_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    head, payload, signature = _token(issuer).split(".")
    raw = bytearray(_unb64(signature))
    raw[0] ^= 0x01
    with pytest.raises(InvalidTokenError):
        await verifier.verify(f"{head}.{payload}.{_b64(bytes(raw))}")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "a.b", "x" * 9000, "..."])
async def test_garbage_is_refused(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier.verify(garbage)


async def test_a_service_token_is_not_an_access_token(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    with pytest.raises(InvalidTokenError, match="access token is required"):
        await verifier.verify(_token(issuer, token_use=SERVICE))


async def test_extra_claims_cannot_override_registered_ones(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    token = _token(issuer, extra={"iss": "evil", "aud": "evil", "phone": "+15550001111"})
    claims = await verifier.verify(token)
    assert claims.issuer == ISSUER
    assert claims.extra == {"phone": "+15550001111"}


def test_keys_round_trip_through_pem_and_jwk() -> None:
    key = SigningKey.generate()
    loaded = SigningKey.from_pem(key.to_pem())
    assert loaded.kid == key.kid
    document = jwks_document([key])
    assert document["keys"][0]["kid"] == key.kid
    assert "d" not in document["keys"][0]  # never the private part
    public = public_key_from_jwk(document["keys"][0])
    assert public.public_bytes_raw() == key.public_key.public_bytes_raw()
    assert "PRIVATE" not in repr(key)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "n": "x", "e": "AQAB", "kid": "k"},
        {"kty": "OKP", "crv": "X25519", "x": _b64(b"\x00" * 32), "kid": "k"},
        {"kty": "OKP", "crv": "Ed25519", "x": _b64(b"\x00" * 31), "kid": "k"},
        {"kty": "OKP", "crv": "Ed25519", "x": _b64(b"\x01" * 32), "alg": "HS256"},
    ],
)
def test_foreign_jwks_are_refused(jwk: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="key"):
        public_key_from_jwk(jwk)


def test_a_non_ed25519_pem_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        SigningKey.from_pem(pem)


class _RevocableKeys:
    """A key source whose keys can be taken away, as a JWKS rotation does."""

    def __init__(self, key: SigningKey) -> None:
        self.keys = {key.kid: key.public_key}

    async def get_key(self, kid: str) -> Ed25519PublicKey:
        try:
            return self.keys[kid]
        except KeyError:
            raise UnknownKeyError() from None


async def test_a_verified_token_is_remembered(issuer: TokenIssuer, key: SigningKey) -> None:
    remembering = TokenVerifier(key_source=StaticKeySource([key]), issuer=ISSUER, audience=AUDIENCE)
    checking = TokenVerifier(
        key_source=StaticKeySource([key]), issuer=ISSUER, audience=AUDIENCE, cache_size=0
    )
    token = _token(issuer)
    assert await remembering.verify(token) is await remembering.verify(token)
    first, again = await checking.verify(token), await checking.verify(token)
    assert first == again
    assert first is not again


async def test_a_remembered_token_is_refused_once_its_key_is_gone(
    issuer: TokenIssuer, key: SigningKey
) -> None:
    keys = _RevocableKeys(key)
    verifier = TokenVerifier(key_source=keys, issuer=ISSUER, audience=AUDIENCE)
    token = _token(issuer)
    await verifier.verify(token)
    keys.keys.clear()
    with pytest.raises(UnknownKeyError):
        await verifier.verify(token)


async def test_a_remembered_token_expires_with_its_exp(
    issuer: TokenIssuer, key: SigningKey
) -> None:
    verifier = TokenVerifier(
        key_source=StaticKeySource([key]), issuer=ISSUER, audience=AUDIENCE, leeway_s=0
    )
    expires = int(time.time()) + 2
    token = _token(issuer, now=datetime.fromtimestamp(expires, UTC) - timedelta(minutes=15))
    assert (await verifier.verify(token)).subject == "user-1"
    await asyncio.sleep(expires - time.time() + 0.1)
    with pytest.raises(ExpiredTokenError):
        await verifier.verify(token)


async def test_a_refused_token_is_checked_again_every_time(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    header, payload, signature = _token(issuer).split(".")
    forged = ".".join(
        [header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")]
    )
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(forged)
