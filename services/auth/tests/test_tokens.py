"""Refresh tokens rotate, reuse revokes the family, logout revokes; the JWKS rotates keys."""

import asyncio
import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from auth_service.fields import phone_index, phone_ref
from jwt_core_lib import SigningKey, TokenIssuer
from storefront_stack.checks import rows

from .conftest import Auth, bearer, new_chat_id, new_phone, problem


async def _refresh(auth: Auth, token: str) -> Any:
    return await auth.client.post("/api/v1/auth/token/refresh", json={"refresh_token": token})


async def _family_state(auth: Auth, token: str) -> list[tuple[bool, bool]]:
    """(used, revoked) of every token in the family of a token, oldest first."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    family = await rows(
        auth.engine,
        "SELECT used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked"
        " FROM refresh_token WHERE family_id ="
        " (SELECT family_id FROM refresh_token WHERE token_hash = :h)"
        " ORDER BY created_at, id",
        {"h": digest},
    )
    return [(row.used, row.revoked) for row in family]


async def test_refresh_rotates_within_the_family_and_keeps_the_user(auth: Auth) -> None:
    first = await auth.login(new_phone(), new_chat_id())

    rotated = await _refresh(auth, first["refresh_token"])

    assert rotated.status_code == 200, rotated.text
    pair = rotated.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert pair["token_type"] == "Bearer"
    me = await auth.client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    me_before = await auth.client.get("/api/v1/users/me", headers=bearer(first["access_token"]))
    assert me.json()["id"] == me_before.json()["id"]
    assert await _family_state(auth, pair["refresh_token"]) == [(True, False), (False, False)]


def _claims(access_token: str) -> dict[str, Any]:
    payload = access_token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


async def test_access_tokens_carry_one_pseudonym_per_phone_and_never_the_number(
    auth: Auth,
) -> None:
    phone, other_phone = new_phone(), new_phone()
    first = await auth.login(phone, new_chat_id())
    rotated = (await _refresh(auth, first["refresh_token"])).json()
    other = await auth.login(other_phone, new_chat_id())

    ref = _claims(first["access_token"])["phone_ref"]
    # The same phone: the same reference at every login and refresh, derived from the
    # phone alone (what orders' fraud rules count by); another phone: another one.
    assert ref == phone_ref(phone_index(phone))
    assert _claims(rotated["access_token"])["phone_ref"] == ref
    assert _claims(other["access_token"])["phone_ref"] != ref
    assert len(ref) == 32
    int(ref, 16)
    # Neither the number nor the blind index auth's rows carry.
    assert phone.lstrip("+") not in json.dumps(_claims(first["access_token"]))
    assert ref not in phone_index(phone).hex()


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(auth: Auth) -> None:
    first = await auth.login(new_phone(), new_chat_id())
    second = (await _refresh(auth, first["refresh_token"])).json()

    reused = await _refresh(auth, first["refresh_token"])
    newer = await _refresh(auth, second["refresh_token"])

    body = problem(reused, 401, "refresh_token_reused")
    assert "revoked" in body["detail"]
    problem(newer, 401, "refresh_token_reused")
    assert await _family_state(auth, first["refresh_token"]) == [(True, True), (False, True)]


async def test_another_login_of_the_same_user_survives_a_reuse_elsewhere(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    laptop = await auth.login(phone, chat_id)
    await auth.allow_resend(phone)
    phone_app = await auth.login(phone, chat_id)
    await _refresh(auth, laptop["refresh_token"])
    problem(await _refresh(auth, laptop["refresh_token"]), 401, "refresh_token_reused")

    assert (await _refresh(auth, phone_app["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_of_one_token_only_one_wins(auth: Auth) -> None:
    tokens = await auth.login(new_phone(), new_chat_id())

    answers = await asyncio.gather(*(_refresh(auth, tokens["refresh_token"]) for _ in range(5)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 401, 401, 401, 401]
    assert {a.json()["code"] for a in answers if a.status_code == 401} == {"refresh_token_reused"}
    # the token was presented again after it was spent: the family is revoked
    family = await _family_state(auth, tokens["refresh_token"])
    assert family == [(True, True), (False, True)]


async def test_unknown_expired_and_malformed_refresh_tokens(auth: Auth) -> None:
    tokens = await auth.login(new_phone(), new_chat_id())
    problem(await _refresh(auth, "x" * 43), 401, "refresh_token_invalid")
    await auth.execute(
        "UPDATE refresh_token SET expires_at = now() - interval '1 second'"
        " WHERE token_hash = encode(sha256(convert_to(:t, 'UTF8')), 'hex')",
        {"t": tokens["refresh_token"]},
    )
    problem(await _refresh(auth, tokens["refresh_token"]), 401, "refresh_token_expired")
    for body in [
        {},
        {"refresh_token": "short"},
        {"refresh_token": "y" * 500},
        {"refresh_token": "x" * 43, "extra": 1},
    ]:
        problem(
            await auth.client.post("/api/v1/auth/token/refresh", json=body), 422, "validation_error"
        )
    # nothing was revoked by any of that
    assert await _family_state(auth, tokens["refresh_token"]) == [(False, False)]


async def test_logout_revokes_the_family(auth: Auth) -> None:
    first = await auth.login(new_phone(), new_chat_id())
    second = (await _refresh(auth, first["refresh_token"])).json()

    out = await auth.client.post(
        "/api/v1/auth/logout", json={"refresh_token": second["refresh_token"]}
    )
    again = await auth.client.post(
        "/api/v1/auth/logout", json={"refresh_token": second["refresh_token"]}
    )
    unknown = await auth.client.post("/api/v1/auth/logout", json={"refresh_token": "z" * 43})

    assert out.status_code == 204
    assert out.content == b""
    assert again.status_code == 204
    assert unknown.status_code == 204
    problem(await _refresh(auth, second["refresh_token"]), 401, "refresh_token_reused")
    assert await _family_state(auth, first["refresh_token"]) == [(True, True), (False, True)]
    problem(await auth.client.post("/api/v1/auth/logout", json={}), 422, "validation_error")


async def test_role_changes_reach_the_next_access_token(auth: Auth) -> None:
    phone = new_phone()
    tokens = await auth.login(phone, new_chat_id())
    before = await auth.client.get("/api/v1/admin/users", headers=bearer(tokens["access_token"]))
    await auth.execute(
        "UPDATE user_account SET roles = ARRAY['moderator', 'customer']::varchar[]"
        " WHERE phone_index = :p",
        {"p": phone_index(phone)},
    )
    pair = (await _refresh(auth, tokens["refresh_token"])).json()
    after = await auth.client.get("/api/v1/admin/users", headers=bearer(pair["access_token"]))

    problem(before, 403, "forbidden")
    assert after.status_code == 200


async def test_jwks_publishes_current_then_previous_keys_with_cache_control(
    start_auth: Any, keys: Any
) -> None:
    retired = SigningKey.generate()
    async with start_auth(
        jwt_previous_keys=[SecretStr(retired.to_pem())], jwks_max_age_s=120
    ) as auth:
        response = await auth.client.get("/.well-known/jwks.json")
        tokens = await auth.login(new_phone(), new_chat_id())
        # a token signed with the retired key is still accepted during the rotation
        old = TokenIssuer(signing_key=retired, issuer="storefront-auth").issue(
            subject="00000000-0000-7000-8000-000000000000",
            audience="storefront",
            ttl=timedelta(minutes=1),
            roles=["moderator"],
        )
        staff = await auth.client.get("/api/v1/admin/users", headers=bearer(old))

    assert response.headers["cache-control"] == "public, max-age=120"
    kids = [key["kid"] for key in response.json()["keys"]]
    assert kids == [keys.user_key.kid, retired.kid]
    assert all(set(k) == {"kty", "crv", "x", "kid", "use", "alg"} for k in response.json()["keys"])
    assert tokens["access_token"]
    assert staff.status_code == 200


async def test_without_a_configured_key_an_ephemeral_one_is_used(start_auth: Any) -> None:
    async with start_auth(jwt_signing_key=SecretStr("changeme")) as auth:
        jwks = (await auth.client.get("/.well-known/jwks.json")).json()
        tokens = await auth.login(new_phone(), new_chat_id())
        me = await auth.client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
    assert len(jwks["keys"]) == 1
    assert jwks["keys"][0]["kid"] != auth.keys.user_key.kid
    assert me.status_code == 200
