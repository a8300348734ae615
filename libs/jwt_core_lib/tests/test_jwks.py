"""The JWKS client: caching, rotation without restarts, rate-limited refresh, auth outages."""

from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jwt_core_lib import (
    JWKSClient,
    KeysUnavailableError,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    UnknownKeyError,
    jwks_document,
)

URL = "http://auth/.well-known/jwks.json"


class AuthStandIn:
    """An ASGI app serving a JWKS document that a test can rotate or take down."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.up = True
        self.requests = 0
        self.app = Starlette(routes=[Route("/.well-known/jwks.json", self.jwks)])

    async def jwks(self, request: Request) -> Response:
        self.requests += 1
        if not self.up:
            return Response(status_code=503)
        return JSONResponse(jwks_document(self.keys))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(auth: AuthStandIn, clock: Clock, **kwargs: float) -> JWKSClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=auth.app))
    return JWKSClient(url=URL, http_client=http, clock=clock, **kwargs)


def _verifier(source: JWKSClient) -> TokenVerifier:
    return TokenVerifier(key_source=source, issuer="auth", audience="storefront")


def _token(key: SigningKey) -> str:
    return TokenIssuer(signing_key=key, issuer="auth").issue(
        subject="u", audience="storefront", ttl=timedelta(minutes=5)
    )


async def test_keys_are_fetched_once_and_cached() -> None:
    key = SigningKey.generate()
    auth, clock = AuthStandIn(key), Clock()
    verifier = _verifier(_client(auth, clock))
    for _ in range(20):
        assert (await verifier.verify(_token(key))).subject == "u"
    assert auth.requests == 1


async def test_rotation_is_picked_up_without_restart() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    auth, clock = AuthStandIn(old), Clock()
    verifier = _verifier(_client(auth, clock, min_refresh_interval_s=5))
    await verifier.verify(_token(old))
    auth.keys = [new, old]  # auth rotates: the new key signs, the old one still verifies
    clock.now += 6
    assert (await verifier.verify(_token(new))).key_id == new.kid
    assert (await verifier.verify(_token(old))).key_id == old.kid
    assert auth.requests == 2


async def test_unknown_kids_do_not_turn_every_request_into_a_fetch() -> None:
    key = SigningKey.generate()
    auth, clock = AuthStandIn(key), Clock()
    verifier = _verifier(_client(auth, clock, min_refresh_interval_s=5))
    await verifier.verify(_token(key))
    for round_ in range(1, 3):
        clock.now += 6
        for _ in range(50):
            with pytest.raises(UnknownKeyError):
                await verifier.verify(_token(SigningKey.generate()))
        # One refresh per interval, however many made-up kids arrive.
        assert auth.requests == 1 + round_


async def test_cached_keys_survive_auth_being_down() -> None:
    key = SigningKey.generate()
    auth, clock = AuthStandIn(key), Clock()
    verifier = _verifier(_client(auth, clock, cache_ttl_s=60))
    await verifier.verify(_token(key))
    auth.up = False
    clock.now += 3600  # far past the cache lifetime
    assert (await verifier.verify(_token(key))).subject == "u"


async def test_a_cold_cache_with_auth_down_is_a_503_not_a_401() -> None:
    key = SigningKey.generate()
    auth, clock = AuthStandIn(key), Clock()
    auth.up = False
    verifier = _verifier(_client(auth, clock))
    with pytest.raises(KeysUnavailableError) as info:
        await verifier.verify(_token(key))
    assert info.value.status_code == 503
    auth.up = True
    clock.now += 10
    assert (await verifier.verify(_token(key))).subject == "u"


async def test_unreachable_auth_is_survived() -> None:
    key = SigningKey.generate()
    http = httpx.AsyncClient()
    client = JWKSClient(url="http://127.0.0.1:1/jwks", http_client=http, fetch_timeout_s=0.5)
    with pytest.raises(KeysUnavailableError):
        await client.get_key(key.kid)
    await http.aclose()


async def test_malformed_documents_keep_the_old_keys() -> None:
    key = SigningKey.generate()
    auth, clock = AuthStandIn(key), Clock()
    source = _client(auth, clock, cache_ttl_s=1)
    await source.get_key(key.kid)

    async def broken(request: Request) -> Response:
        return Response("not json", media_type="application/json")

    auth.app.router.routes[0] = Route("/.well-known/jwks.json", broken)
    clock.now += 10
    assert await source.get_key(key.kid) is not None
