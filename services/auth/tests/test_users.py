"""``/users/me`` for everyone; ``/admin/users`` for staff, role changes for admins."""

import uuid

from .conftest import Auth, bearer, login_as, new_chat_id, new_phone, problem

_login = login_as


async def test_me_shows_the_callers_profile(auth: Auth) -> None:
    headers, row = await _login(auth)

    me = await auth.client.get("/api/v1/users/me", headers=headers)

    assert me.status_code == 200
    body = me.json()
    assert body == {
        "id": str(row["id"]),
        "phone": row["phone"],
        "roles": ["customer"],
        "display_name": None,
        "email": None,
        "locale": None,
        "telegram_linked": True,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert "telegram_chat_id" not in body


async def test_me_needs_a_valid_access_token(auth: Auth) -> None:
    missing = await auth.client.get("/api/v1/users/me")
    foreign = await auth.client.get(
        "/api/v1/users/me", headers=bearer(auth.keys.service_token(audience="storefront"))
    )
    problem(missing, 401, "not_authenticated")
    problem(foreign, 401, "invalid_token")
    gone = await auth.client.get(
        "/api/v1/users/me", headers=bearer(auth.keys.user_token(subject=str(uuid.uuid4())))
    )
    problem(gone, 404, "user_not_found")


async def test_patch_me_changes_and_clears_fields(auth: Auth) -> None:
    headers, row = await _login(auth)

    changed = await auth.client.patch(
        "/api/v1/users/me",
        json={"display_name": "  Ada Lovelace ", "email": "Ada@Example.ORG", "locale": "en-GB"},
        headers=headers,
    )
    partly = await auth.client.patch("/api/v1/users/me", json={"locale": None}, headers=headers)
    nothing = await auth.client.patch("/api/v1/users/me", json={}, headers=headers)

    assert changed.status_code == 200
    assert {k: changed.json()[k] for k in ("display_name", "email", "locale")} == {
        "display_name": "Ada Lovelace",
        "email": "Ada@example.org",
        "locale": "en-GB",
    }
    assert partly.json()["locale"] is None
    assert partly.json()["display_name"] == "Ada Lovelace"
    assert nothing.json() == partly.json()
    stored = await auth.user_row(row["phone"])
    assert stored is not None
    assert (stored["display_name"], stored["email"], stored["locale"]) == (
        "Ada Lovelace",
        "Ada@example.org",
        None,
    )
    assert stored["updated_at"] > row["updated_at"]


async def test_patch_me_refuses_bad_values_and_other_fields_and_changes_nothing(
    auth: Auth,
) -> None:
    headers, row = await _login(auth)
    for body in [
        {"roles": ["admin"]},
        {"phone": "+15550000001"},
        {"telegram_chat_id": 1},
        {"email": "not-an-email"},
        {"email": "a@b"},
        {"email": "a..b@example.org"},
        {"display_name": ""},
        {"display_name": "x" * 65},
        {"locale": "english"},
        {"display_name": 42},
    ]:
        response = await auth.client.patch("/api/v1/users/me", json=body, headers=headers)
        problem(response, 422, "validation_error")
    assert await auth.user_row(row["phone"]) == row


async def test_customers_get_403_on_the_admin_api(auth: Auth) -> None:
    headers, row = await _login(auth)
    listing = await auth.client.get("/api/v1/admin/users", headers=headers)
    one = await auth.client.get(f"/api/v1/admin/users/{row['id']}", headers=headers)
    roles = await auth.client.put(
        f"/api/v1/admin/users/{row['id']}/roles", json={"roles": ["admin"]}, headers=headers
    )
    for response in (listing, one, roles):
        problem(response, 403, "forbidden")
    assert (await auth.user_row(row["phone"]) or {})["roles"] == ["customer"]
    problem(await auth.client.get("/api/v1/admin/users"), 401, "not_authenticated")


async def test_staff_list_users_with_paging_and_filters(auth: Auth) -> None:
    headers, moderator = await _login(auth, "moderator")
    phones = [new_phone() for _ in range(3)]
    for phone in phones:
        await auth.login(phone, new_chat_id())

    first = await auth.client.get(
        "/api/v1/admin/users", params={"role": "customer", "size": 2}, headers=headers
    )
    second = await auth.client.get(
        "/api/v1/admin/users", params={"role": "customer", "size": 2, "page": 2}, headers=headers
    )
    # Phones are stored encrypted: the filter matches a whole number, through its blind index.
    by_phone = await auth.client.get(
        "/api/v1/admin/users", params={"phone": phones[1]}, headers=headers
    )
    by_prefix = await auth.client.get(
        "/api/v1/admin/users", params={"phone": phones[1][:-2]}, headers=headers
    )
    moderators = await auth.client.get(
        "/api/v1/admin/users", params={"role": "moderator"}, headers=headers
    )
    one = await auth.client.get(f"/api/v1/admin/users/{moderator['id']}", headers=headers)

    assert first.status_code == 200, first.text
    page_one, page_two = first.json(), second.json()
    assert (page_one["page"], page_one["size"], page_two["page"]) == (1, 2, 2)
    assert page_one["total"] == page_two["total"] >= 4  # the moderator is a customer too
    listed = [u["phone"] for u in page_one["items"] + page_two["items"][:1]]
    assert listed == list(reversed(phones))  # newest first
    assert [u["phone"] for u in by_phone.json()["items"]] == [phones[1]]
    assert by_prefix.status_code == 200
    assert by_prefix.json()["total"] == 0
    assert page_one["items"][0]["telegram_chat_id"] is not None
    assert [u["id"] for u in moderators.json()["items"]] == [str(moderator["id"])]
    assert one.json()["roles"] == ["moderator"]
    assert one.json()["last_login_at"] is not None


async def test_admin_list_refuses_bad_filters(auth: Auth) -> None:
    headers, _ = await _login(auth, "moderator")
    for params in [
        {"role": "superuser"},
        {"phone": "1555"},
        {"size": 0},
        {"size": 101},
        {"page": 0},
    ]:
        response = await auth.client.get("/api/v1/admin/users", params=params, headers=headers)
        problem(response, 422, "validation_error")
    missing = await auth.client.get(f"/api/v1/admin/users/{uuid.uuid4()}", headers=headers)
    problem(missing, 404, "user_not_found")
    problem(
        await auth.client.get("/api/v1/admin/users/not-a-uuid", headers=headers),
        422,
        "validation_error",
    )


async def test_admins_change_roles_moderators_cannot(auth: Auth) -> None:
    admin, _ = await _login(auth, "admin", "customer")
    moderator, _ = await _login(auth, "moderator")
    _, target = await _login(auth)
    path = f"/api/v1/admin/users/{target['id']}/roles"

    by_moderator = await auth.client.put(path, json={"roles": ["admin"]}, headers=moderator)
    by_admin = await auth.client.put(
        path, json={"roles": ["customer", "moderator", "customer"]}, headers=admin
    )

    problem(by_moderator, 403, "forbidden")
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["roles"] == ["moderator", "customer"]
    assert (await auth.user_row(target["phone"]) or {})["roles"] == ["moderator", "customer"]


async def test_role_changes_refuse_unknown_roles_and_bad_bodies(auth: Auth) -> None:
    admin, _ = await _login(auth, "admin")
    _, target = await _login(auth)
    path = f"/api/v1/admin/users/{target['id']}/roles"
    for body in [
        {"roles": ["root"]},
        {"roles": []},
        {"roles": "admin"},
        {"roles": ["admin"], "reason": "x"},
        {},
    ]:
        problem(await auth.client.put(path, json=body, headers=admin), 422, "validation_error")
    assert (await auth.user_row(target["phone"]) or {})["roles"] == ["customer"]
    missing = await auth.client.put(
        f"/api/v1/admin/users/{uuid.uuid4()}/roles", json={"roles": ["admin"]}, headers=admin
    )
    problem(missing, 404, "user_not_found")


async def test_an_admin_cannot_remove_their_own_admin_role(auth: Auth) -> None:
    admin, me = await _login(auth, "admin", "customer")
    path = f"/api/v1/admin/users/{me['id']}/roles"

    demoted = await auth.client.put(path, json={"roles": ["customer"]}, headers=admin)
    kept = await auth.client.put(path, json={"roles": ["admin"]}, headers=admin)

    problem(demoted, 409, "own_admin_role")
    assert kept.status_code == 200
    assert kept.json()["roles"] == ["admin"]


async def test_a_staff_role_is_refused_for_a_user_whose_phone_no_chat_proved(
    auth: Auth,
) -> None:
    admin, _ = await _login(auth, "admin")
    phone = new_phone()
    # A user without a linked chat (an account from before chats were proven, or one whose
    # chat was taken over by a proven owner): nothing says its phone is theirs.
    await auth.insert_user(phone)
    target = await auth.user_row(phone)
    assert target is not None
    path = f"/api/v1/admin/users/{target['id']}/roles"

    for roles in (["admin"], ["moderator", "customer"]):
        refused = await auth.client.put(path, json={"roles": roles}, headers=admin)
        body = problem(refused, 409, "phone_not_proven")
        assert "proven" in body["detail"]
    assert await auth.user_row(phone) == target  # changed nothing
    unchanged = await auth.client.put(path, json={"roles": ["customer"]}, headers=admin)
    assert unchanged.status_code == 200  # what grants no staff role is not refused
    # once a chat proved the phone (a login through Telegram), the same grant works
    await auth.login(phone, new_chat_id())
    granted = await auth.client.put(path, json={"roles": ["moderator"]}, headers=admin)
    assert granted.status_code == 200, granted.text
    assert granted.json()["roles"] == ["moderator"]
