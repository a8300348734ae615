"""FastAPI dependencies: 401 with a challenge, 403 for roles, internal routes for services only."""

from datetime import timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from jwt_core_lib import (
    SERVICE,
    JWTBearer,
    ServiceAuth,
    ServiceTokenAuth,
    ServiceTokenMinter,
    SigningKey,
    StaticKeySource,
    TokenClaims,
    TokenIssuer,
    TokenVerifier,
    require_roles,
)

USER_KEY, SERVICE_KEY = SigningKey.generate(), SigningKey.generate()
users = TokenIssuer(signing_key=USER_KEY, issuer="auth")
services = TokenIssuer(signing_key=SERVICE_KEY, issuer="services")

bearer = JWTBearer(
    TokenVerifier(key_source=StaticKeySource([USER_KEY]), issuer="auth", audience="storefront")
)
internal = ServiceAuth.from_state("service_verifier")
app = FastAPI()
app.state.service_verifier = TokenVerifier(
    key_source=StaticKeySource([SERVICE_KEY]),
    issuer="services",
    audience="inventory",
    token_use=SERVICE,
)


@app.get("/me")
async def me(claims: Annotated[TokenClaims, Depends(bearer)]) -> dict[str, str]:
    return {"sub": claims.subject}


@app.get("/admin")
async def admin(
    claims: Annotated[TokenClaims, Depends(require_roles(bearer, "admin"))],
) -> dict[str, str]:
    return {"sub": claims.subject}


@app.post("/internal/inventory/reserve")
async def reserve(caller: Annotated[TokenClaims, Depends(internal)]) -> dict[str, str]:
    return {"caller": caller.subject}


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _user(*roles: str) -> str:
    return users.issue(
        subject="alice", audience="storefront", ttl=timedelta(minutes=5), roles=roles
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_passes(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=_auth(_user("customer")))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}


async def test_missing_token_is_401_with_a_bare_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="storefront"'


@pytest.mark.parametrize(
    "header", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer not-a-token", "Token abc"]
)
async def test_bad_credentials_are_401_invalid_token(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.get("/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert "www-authenticate" in response.headers
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_invalid_token_names_the_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=_auth(_user() + "x"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_missing_role_is_403(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin", headers=_auth(_user("customer")))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    allowed = await client.get("/admin", headers=_auth(_user("admin")))
    assert allowed.json() == {"sub": "alice"}


async def test_internal_route_accepts_a_service_token_for_its_audience(
    client: httpx.AsyncClient,
) -> None:
    minter = ServiceTokenMinter(issuer=services, service_name="orders")
    client.auth = ServiceTokenAuth(minter, "inventory")
    response = await client.post("/internal/inventory/reserve")
    assert response.status_code == 200
    assert response.json() == {"caller": "orders"}


async def test_internal_route_refuses_a_user_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/internal/inventory/reserve", headers=_auth(_user("admin")))
    assert response.status_code == 401


async def test_internal_route_refuses_a_user_token_even_signed_with_the_service_key(
    client: httpx.AsyncClient,
) -> None:
    token = services.issue(subject="alice", audience="inventory", ttl=timedelta(minutes=1))
    response = await client.post("/internal/inventory/reserve", headers=_auth(token))
    assert response.status_code == 401
    assert "service token is required" in response.headers["www-authenticate"]


async def test_internal_route_refuses_a_service_token_for_another_audience(
    client: httpx.AsyncClient,
) -> None:
    token = ServiceTokenMinter(issuer=services, service_name="orders").token_for("notifications")
    response = await client.post("/internal/inventory/reserve", headers=_auth(token))
    assert response.status_code == 401
    assert "another audience" in response.headers["www-authenticate"]


async def test_internal_route_refuses_no_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/internal/inventory/reserve")
    assert response.status_code == 401


def test_the_minter_reuses_a_token_until_it_nears_expiry() -> None:
    minter = ServiceTokenMinter(issuer=services, service_name="orders", ttl=timedelta(seconds=60))
    first = minter.token_for("inventory")
    assert minter.token_for("inventory") == first
    assert minter.token_for("notifications") != first
    stale = ServiceTokenMinter(
        issuer=services,
        service_name="orders",
        ttl=timedelta(seconds=10),
        renew_before=timedelta(seconds=15),
    )
    assert stale.token_for("inventory") != stale.token_for("inventory")


def test_require_roles_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_roles(bearer)
