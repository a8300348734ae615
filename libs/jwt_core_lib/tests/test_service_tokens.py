"""Service tokens: each caller signs with its own key, ``iss`` owns it, routes pick callers."""

from datetime import timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from jwt_core_lib import (
    ALLOWED_CALLERS,
    CallerKeys,
    ServiceAuth,
    ServiceTokenMinter,
    ServiceTokenVerifier,
    SigningKey,
    TokenClaims,
    TokenIssuer,
    key_id,
    public_key_from_x,
    require_callers,
)

ORDERS, CATALOG, NOTIFICATIONS = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()


def token(key: SigningKey, issuer: str, audience: str = "inventory") -> str:
    minter = ServiceTokenMinter(
        issuer=TokenIssuer(signing_key=key, issuer=issuer), service_name=issuer
    )
    return minter.token_for(audience)


def inventory_verifier(**callers: list[SigningKey]) -> ServiceTokenVerifier:
    return ServiceTokenVerifier(
        callers=CallerKeys({name: [k.public_key for k in keys] for name, keys in callers.items()}),
        audience="inventory",
    )


def test_a_public_key_travels_as_its_jwk_x_and_keeps_its_kid() -> None:
    public = public_key_from_x(ORDERS.x)
    assert key_id(public) == ORDERS.kid
    assert ORDERS.public_jwk()["x"] == ORDERS.x
    for bad in ["", "not base64!", ORDERS.x[:-2], ORDERS.x + "AAAA", "A" * 100]:
        with pytest.raises(ValueError, match="32 bytes"):
            public_key_from_x(bad)


def test_one_key_cannot_belong_to_two_callers() -> None:
    with pytest.raises(ValueError, match="both"):
        CallerKeys({"orders": [ORDERS.public_key], "catalog": [ORDERS.public_key]})


async def test_a_caller_signing_with_its_own_key_is_verified_as_itself() -> None:
    verifier = inventory_verifier(orders=[ORDERS], catalog=[CATALOG])
    claims = await verifier.verify(token(ORDERS, "orders"))
    assert (claims.issuer, claims.subject, claims.audience) == ("orders", "orders", "inventory")
    assert claims.key_id == ORDERS.kid
    assert (await verifier.verify(token(CATALOG, "catalog"))).issuer == "catalog"


async def test_a_key_cannot_vouch_for_another_caller() -> None:
    verifier = inventory_verifier(orders=[ORDERS], catalog=[CATALOG])
    # catalog's key, claiming to be orders: iss must be the key's owner.
    with pytest.raises(Exception, match="another issuer") as refused:
        await verifier.verify(token(CATALOG, "orders"))
    assert getattr(refused.value, "status_code", None) == 401


async def test_a_key_no_caller_lists_is_refused_whoever_it_claims_to_be() -> None:
    verifier = inventory_verifier(orders=[ORDERS])
    for claimed in ("notifications", "orders"):
        with pytest.raises(Exception, match="unknown key") as refused:
            await verifier.verify(token(NOTIFICATIONS, claimed))
        assert getattr(refused.value, "status_code", None) == 401


async def test_a_token_for_another_audience_is_refused() -> None:
    verifier = inventory_verifier(orders=[ORDERS])
    with pytest.raises(Exception, match="another audience"):
        await verifier.verify(token(ORDERS, "orders", audience="notifications"))


async def test_both_keys_of_a_caller_work_during_a_rotation_and_a_withdrawn_one_stops() -> None:
    new = SigningKey.generate()
    old_token, new_token = token(ORDERS, "orders"), token(new, "orders")
    during = inventory_verifier(orders=[ORDERS, new])
    assert (await during.verify(old_token)).issuer == "orders"
    assert (await during.verify(new_token)).issuer == "orders"
    after = inventory_verifier(orders=[new])
    assert (await after.verify(new_token)).issuer == "orders"
    with pytest.raises(Exception, match="unknown key"):
        await after.verify(old_token)


async def test_a_user_style_token_signed_by_a_caller_is_not_a_service_token() -> None:
    verifier = inventory_verifier(orders=[ORDERS])
    access = TokenIssuer(signing_key=ORDERS, issuer="orders").issue(
        subject="orders", audience="inventory", ttl=timedelta(minutes=1)
    )
    with pytest.raises(Exception, match="service token is required"):
        await verifier.verify(access)


# --- require_callers on a route ----------------------------------------------------------

service = ServiceAuth.from_state("service_verifier")
orders_only = require_callers(service, "orders")
app = FastAPI()
app.state.service_verifier = inventory_verifier(orders=[ORDERS], catalog=[CATALOG])


@app.post("/internal/inventory/reserve")
async def reserve(caller: Annotated[TokenClaims, Depends(orders_only)]) -> dict[str, str]:
    return {"caller": caller.issuer}


async def test_a_route_lets_its_callers_in_and_answers_403_to_other_valid_callers() -> None:
    assert getattr(orders_only, ALLOWED_CALLERS) == frozenset({"orders"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:

        async def call(bearer: str) -> httpx.Response:
            return await client.post(
                "/internal/inventory/reserve", headers={"Authorization": f"Bearer {bearer}"}
            )

        accepted = await call(token(ORDERS, "orders"))
        assert accepted.status_code == 200
        assert accepted.json() == {"caller": "orders"}
        forbidden = await call(token(CATALOG, "catalog"))
        assert forbidden.status_code == 403
        assert "catalog" in forbidden.json()["detail"]
        unknown = await call(token(NOTIFICATIONS, "notifications"))
        assert unknown.status_code == 401
        assert unknown.headers["www-authenticate"].startswith("Bearer")


def test_a_route_must_name_at_least_one_caller() -> None:
    with pytest.raises(ValueError, match="at least one caller"):
        require_callers(service)
