"""Reserve, release and commit through the internal API: exact under contention,
all-or-nothing, idempotent per order, priced by inventory."""

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from storefront_stack.checks import problem


@pytest.mark.parametrize("round_", [1, 2, 3])
async def test_500_concurrent_reservations_of_50_units_sell_exactly_50(
    inventory: Any, round_: int
) -> None:
    product = await inventory.create_product(on_hand=50)
    sku = product["sku"]
    orders = [uuid.uuid4() for _ in range(500)]

    async def reserve(order: uuid.UUID) -> Any:
        # As orders calls it: a 503 (the pool's timeout shedding load on a busy machine)
        # says "retry shortly", and a retry with the same order id is idempotent.
        for _ in range(20):
            response = await inventory.reserve([{"sku": sku, "qty": 1}], order_id=order)
            if response.status_code != 503:
                return response
            problem(response, 503, "dependency_unavailable")
            await asyncio.sleep(0.2)
        return response

    responses = await asyncio.gather(*(reserve(order) for order in orders))

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(ok) == 50
    assert len(refused) == 450
    for response in refused:
        body = problem(response, 409, "insufficient_stock")
        assert body["skus"] == [sku]
    reserved_orders = {r.json()["order_id"] for r in ok}
    assert len(reserved_orders) == 50
    for response in ok:
        assert response.json()["status"] == "reserved"
        assert response.json()["lines"] == [
            {"sku": sku, "qty": 1, "unit_price": 1250, "currency": "EUR", "name": "Test product"}
        ]
    stock = await inventory.stock(sku)
    assert stock["on_hand"] == 50
    assert stock["reserved"] == 50
    assert stock["version"] == 1 + 50
    held = await inventory.scalar(
        "SELECT coalesce(sum(l.qty), 0) FROM reservation_line l JOIN reservation r"
        " ON r.id = l.reservation_id WHERE l.sku = :sku AND r.status = 'reserved'",
        {"sku": sku},
    )
    assert held == stock["reserved"]
    assert len(await inventory.outbox("stock.changed", sku)) == 1 + 50  # creation + holds


async def test_concurrent_multi_line_holds_on_shared_skus_never_deadlock_or_split(
    inventory: Any,
) -> None:
    # 300 orders of two units each over three skus of 40, lines in every order: each
    # order holds both of its lines or neither, no sku oversells, no deadlock (a 5xx).
    skus = [(await inventory.create_product(on_hand=40))["sku"] for _ in range(3)]
    pairs = [(a, b) for a in skus for b in skus if a != b]  # both line orders of each pair
    orders = {uuid.uuid4(): pairs[n % len(pairs)] for n in range(300)}

    responses = await asyncio.gather(
        *(
            inventory.reserve([{"sku": a, "qty": 1}, {"sku": b, "qty": 1}], order_id=order)
            for order, (a, b) in orders.items()
        )
    )

    assert {r.status_code for r in responses} <= {200, 409}
    held = {uuid.UUID(r.json()["order_id"]) for r in responses if r.status_code == 200}
    for response in responses:
        if response.status_code == 409:
            problem(response, 409, "insufficient_stock")
    for sku in skus:
        wanted_by_held = sum(1 for order in held if sku in orders[order])
        stock = await inventory.stock(sku)
        assert stock["reserved"] == wanted_by_held <= 40
        lines = await inventory.scalar(
            "SELECT count(*) FROM reservation_line WHERE sku = :sku", {"sku": sku}
        )
        assert lines == wanted_by_held
    # 120 units in pairs: at most 60 orders fit, and at least one sku sold out.
    assert 40 <= len(held) <= 60
    assert 40 in [(await inventory.stock(sku))["reserved"] for sku in skus]


async def test_reserve_answers_inventory_prices_and_holds_stock(inventory: Any) -> None:
    shirt = await inventory.create_product(on_hand=5, price=1999, name="Shirt")
    socks = await inventory.create_product(on_hand=9, price=350, name="Socks")
    order_id = uuid.uuid4()

    response = await inventory.reserve(
        [{"sku": socks["sku"], "qty": 3}, {"sku": shirt["sku"], "qty": 2}],
        order_id=order_id,
        ttl_s=120,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["order_id"] == str(order_id)
    assert body["status"] == "reserved"
    assert body["total"] == 2 * 1999 + 3 * 350
    assert body["currency"] == "EUR"
    assert {line["sku"]: line for line in body["lines"]} == {
        shirt["sku"]: {
            "sku": shirt["sku"], "qty": 2, "unit_price": 1999, "currency": "EUR", "name": "Shirt"
        },
        socks["sku"]: {
            "sku": socks["sku"], "qty": 3, "unit_price": 350, "currency": "EUR", "name": "Socks"
        },
    }  # fmt: skip
    assert body["expires_at"]
    assert await inventory.stock(shirt["sku"]) == {"on_hand": 5, "reserved": 2, "version": 2}
    assert await inventory.stock(socks["sku"]) == {"on_hand": 9, "reserved": 3, "version": 2}
    events = await inventory.outbox("stock.changed", shirt["sku"])
    assert events[-1]["data"] == {
        "sku": shirt["sku"],
        "product_id": shirt["id"],
        "on_hand": 5,
        "reserved": 2,
        "available": 3,
        "version": 2,
    }
    assert events[-1]["source"] == "inventory"


async def test_multi_line_reservation_that_cannot_be_met_holds_nothing(inventory: Any) -> None:
    plenty = await inventory.create_product(on_hand=100)
    scarce = await inventory.create_product(on_hand=1)
    also = await inventory.create_product(on_hand=100)
    before = await inventory.scalar("SELECT count(*) FROM outbox_event")

    response = await inventory.reserve(
        [
            {"sku": plenty["sku"], "qty": 5},
            {"sku": scarce["sku"], "qty": 2},
            {"sku": also["sku"], "qty": 5},
        ]
    )

    body = problem(response, 409, "insufficient_stock")
    assert body["skus"] == [scarce["sku"]]
    assert scarce["sku"] in body["detail"]
    for product in (plenty, scarce, also):
        stock = await inventory.stock(product["sku"])
        assert stock["reserved"] == 0
        assert stock["version"] == 1
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM reservation_line WHERE sku = ANY(:skus)",
            {"skus": [plenty["sku"], scarce["sku"], also["sku"]]},
        )
        == 0
    )
    assert await inventory.scalar("SELECT count(*) FROM outbox_event") == before


async def test_insufficient_stock_names_every_short_sku_and_frees_the_order(
    inventory: Any,
) -> None:
    first = await inventory.create_product(on_hand=1)
    second = await inventory.create_product(on_hand=0)
    order_id = uuid.uuid4()
    items = [{"sku": first["sku"], "qty": 2}, {"sku": second["sku"], "qty": 1}]

    body = problem(await inventory.reserve(items, order_id=order_id), 409, "insufficient_stock")
    assert body["skus"] == sorted([first["sku"], second["sku"]])
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM reservation WHERE order_id = :id", {"id": order_id}
        )
        == 0
    )

    # The order id was not used up: once stock arrives the same order can reserve.
    for product in (first, second):
        adjusted = await inventory.adjust_stock(product, 5, "delivery")
        assert adjusted.status_code == 200, adjusted.text
    retried = await inventory.reserve(items, order_id=order_id)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "reserved"


async def test_a_reserve_its_snapshot_refuses_locks_no_stock_row(inventory: Any) -> None:
    # Another transaction holds the stock rows' locks: a reserve that would take them
    # waits for it. Each of these is refused by what it reads without a lock (a line
    # already short, mixed currencies, an unsellable product) and answers while the
    # locks are still held; a reserve that may hold waits until they are released.
    held = await inventory.create_product(on_hand=5)
    sold_out = await inventory.create_product(on_hand=0)
    dollar = await inventory.create_product(on_hand=5, currency="USD")
    inactive = await inventory.create_product(on_hand=5, active=False)
    skus = [held["sku"], sold_out["sku"], dollar["sku"], inactive["sku"]]
    async with inventory.engine.connect() as locker, locker.begin():
        await locker.execute(
            text("SELECT sku FROM stock WHERE sku = ANY(:skus) FOR UPDATE"), {"skus": skus}
        )
        short = await inventory.reserve(
            [{"sku": held["sku"], "qty": 1}, {"sku": sold_out["sku"], "qty": 1}]
        )
        mixed = await inventory.reserve(
            [{"sku": held["sku"], "qty": 1}, {"sku": dollar["sku"], "qty": 1}]
        )
        unsellable = await inventory.reserve(
            [{"sku": held["sku"], "qty": 1}, {"sku": inactive["sku"], "qty": 1}]
        )
        assert problem(short, 409, "insufficient_stock")["skus"] == [sold_out["sku"]]
        assert problem(mixed, 422, "mixed_currency")["currencies"] == ["EUR", "USD"]
        assert problem(unsellable, 409, "product_unavailable")["skus"] == [inactive["sku"]]
        waiting = asyncio.create_task(inventory.reserve([{"sku": held["sku"], "qty": 1}]))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # it waits for the row lock
    assert (await waiting).status_code == 200
    assert (await inventory.stock(held["sku"]))["reserved"] == 1


async def test_same_reserve_20_times_concurrently_makes_one_reservation(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=10)
    order_id = uuid.uuid4()
    items = [{"sku": product["sku"], "qty": 3}]

    responses = await asyncio.gather(
        *(inventory.reserve(items, order_id=order_id) for _ in range(20))
    )

    assert [r.status_code for r in responses] == [200] * 20
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["status"] == "reserved"
    assert bodies[0]["lines"][0]["qty"] == 3
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 19
    assert await inventory.stock(product["sku"]) == {"on_hand": 10, "reserved": 3, "version": 2}
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM reservation WHERE order_id = :id", {"id": order_id}
        )
        == 1
    )


async def test_retry_with_items_in_another_order_replays_the_reservation(inventory: Any) -> None:
    a = await inventory.create_product(on_hand=4)
    b = await inventory.create_product(on_hand=4)
    order_id = uuid.uuid4()
    first = await inventory.reserve(
        [{"sku": a["sku"], "qty": 1}, {"sku": b["sku"], "qty": 2}], order_id=order_id
    )
    again = await inventory.reserve(
        [{"sku": b["sku"], "qty": 2}, {"sku": a["sku"], "qty": 1}], order_id=order_id
    )
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert (await inventory.stock(a["sku"]))["reserved"] == 1


async def test_different_body_for_the_same_order_is_refused(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=10)
    order_id = uuid.uuid4()
    first = await inventory.reserve([{"sku": product["sku"], "qty": 1}], order_id=order_id)
    assert first.status_code == 200

    other = await inventory.reserve([{"sku": product["sku"], "qty": 2}], order_id=order_id)
    longer = await inventory.reserve(
        [{"sku": product["sku"], "qty": 1}], order_id=order_id, ttl_s=60
    )

    body = problem(other, 409, "reservation_mismatch")
    assert body["order_id"] == str(order_id)
    problem(longer, 409, "reservation_mismatch")
    assert await inventory.stock(product["sku"]) == {"on_hand": 10, "reserved": 1, "version": 2}


async def test_release_gives_stock_back_once(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=5)
    order_id = uuid.uuid4()
    await inventory.reserve([{"sku": product["sku"], "qty": 4}], order_id=order_id)
    ref = {"order_id": str(order_id)}

    first = await inventory.client.post(
        "/internal/inventory/release", json=ref, headers=inventory.service
    )
    second = await inventory.client.post(
        "/internal/inventory/release", json=ref, headers=inventory.service
    )

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "released"
    assert first.json()["lines"][0] == {
        "sku": product["sku"], "qty": 4, "unit_price": 1250, "currency": "EUR",
        "name": "Test product",
    }  # fmt: skip
    assert await inventory.stock(product["sku"]) == {"on_hand": 5, "reserved": 0, "version": 3}
    commit = await inventory.client.post(
        "/internal/inventory/commit", json=ref, headers=inventory.service
    )
    body = problem(commit, 409, "reservation_state")
    assert body["reservation_status"] == "released"
    # A retried reserve of a released order answers what happened, without holding again.
    replay = await inventory.reserve([{"sku": product["sku"], "qty": 4}], order_id=order_id)
    assert replay.status_code == 200
    assert replay.json()["status"] == "released"
    assert (await inventory.stock(product["sku"]))["reserved"] == 0


async def test_commit_turns_the_hold_into_a_sale_once(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=5)
    order_id = uuid.uuid4()
    await inventory.reserve([{"sku": product["sku"], "qty": 2}], order_id=order_id)
    ref = {"order_id": str(order_id)}

    results = await asyncio.gather(
        *(
            inventory.client.post("/internal/inventory/commit", json=ref, headers=inventory.service)
            for _ in range(5)
        )
    )

    assert [r.status_code for r in results] == [200] * 5
    assert {r.json()["status"] for r in results} == {"committed"}
    assert await inventory.stock(product["sku"]) == {"on_hand": 3, "reserved": 0, "version": 3}
    events = await inventory.outbox("stock.changed", product["sku"])
    assert events[-1]["data"]["on_hand"] == 3
    assert events[-1]["data"]["available"] == 3
    release = await inventory.client.post(
        "/internal/inventory/release", json=ref, headers=inventory.service
    )
    body = problem(release, 409, "reservation_state")
    assert body["reservation_status"] == "committed"
    assert await inventory.stock(product["sku"]) == {"on_hand": 3, "reserved": 0, "version": 3}


async def test_restock_returns_a_committed_sale_to_stock_once(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=5)
    order_id = uuid.uuid4()
    await inventory.reserve([{"sku": product["sku"], "qty": 2}], order_id=order_id)
    ref = {"order_id": str(order_id)}
    early = await inventory.client.post(
        "/internal/inventory/restock", json=ref, headers=inventory.service
    )
    assert problem(early, 409, "reservation_state")["reservation_status"] == "reserved"
    assert await inventory.stock(product["sku"]) == {"on_hand": 5, "reserved": 2, "version": 2}
    await inventory.client.post("/internal/inventory/commit", json=ref, headers=inventory.service)

    results = await asyncio.gather(
        *(
            inventory.client.post(
                "/internal/inventory/restock", json=ref, headers=inventory.service
            )
            for _ in range(5)
        )
    )

    assert [r.status_code for r in results] == [200] * 5
    assert {r.json()["status"] for r in results} == {"returned"}
    assert results[0].json()["lines"][0]["qty"] == 2
    assert await inventory.stock(product["sku"]) == {"on_hand": 5, "reserved": 0, "version": 4}
    events = await inventory.outbox("stock.changed", product["sku"])
    assert [event["data"]["available"] for event in events[-2:]] == [3, 5]
    for action in ("release", "commit"):
        response = await inventory.client.post(
            f"/internal/inventory/{action}", json=ref, headers=inventory.service
        )
        assert problem(response, 409, "reservation_state")["reservation_status"] == "returned"
    assert await inventory.stock(product["sku"]) == {"on_hand": 5, "reserved": 0, "version": 4}


async def test_restock_of_a_released_or_unknown_order_changes_nothing(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=5)
    order_id = uuid.uuid4()
    await inventory.reserve([{"sku": product["sku"], "qty": 1}], order_id=order_id)
    ref = {"order_id": str(order_id)}
    await inventory.client.post("/internal/inventory/release", json=ref, headers=inventory.service)

    released = await inventory.client.post(
        "/internal/inventory/restock", json=ref, headers=inventory.service
    )
    unknown = await inventory.client.post(
        "/internal/inventory/restock",
        json={"order_id": str(uuid.uuid4())},
        headers=inventory.service,
    )

    assert problem(released, 409, "reservation_state")["reservation_status"] == "released"
    problem(unknown, 404, "reservation_not_found")
    assert await inventory.stock(product["sku"]) == {"on_hand": 5, "reserved": 0, "version": 3}


async def test_release_and_commit_of_an_unknown_order_are_404(inventory: Any) -> None:
    ref = {"order_id": str(uuid.uuid4())}
    for action in ("release", "commit"):
        response = await inventory.client.post(
            f"/internal/inventory/{action}", json=ref, headers=inventory.service
        )
        body = problem(response, 404, "reservation_not_found")
        assert ref["order_id"] in body["detail"]


async def test_lines_in_different_currencies_are_refused(inventory: Any) -> None:
    euro = await inventory.create_product(on_hand=5, currency="EUR")
    dollar = await inventory.create_product(on_hand=5, currency="USD")
    response = await inventory.reserve(
        [{"sku": euro["sku"], "qty": 1}, {"sku": dollar["sku"], "qty": 1}]
    )
    body = problem(response, 422, "mixed_currency")
    assert body["currencies"] == ["EUR", "USD"]
    assert (await inventory.stock(euro["sku"]))["reserved"] == 0
    assert (await inventory.stock(dollar["sku"]))["reserved"] == 0


async def test_unknown_and_unsellable_skus_are_refused(inventory: Any, sku_factory: Any) -> None:
    known = await inventory.create_product(on_hand=5)
    inactive = await inventory.create_product(on_hand=5, active=False)
    ghost = sku_factory("GHOST")

    unknown = await inventory.reserve([{"sku": known["sku"], "qty": 1}, {"sku": ghost, "qty": 1}])
    unsellable = await inventory.reserve(
        [{"sku": known["sku"], "qty": 1}, {"sku": inactive["sku"], "qty": 1}]
    )

    assert problem(unknown, 422, "unknown_sku")["skus"] == [ghost]
    assert problem(unsellable, 409, "product_unavailable")["skus"] == [inactive["sku"]]
    assert (await inventory.stock(known["sku"]))["reserved"] == 0
    assert (await inventory.stock(inactive["sku"]))["reserved"] == 0


@pytest.mark.parametrize(
    ("items", "extra"),
    [
        ([{"sku": "{sku}", "qty": 0}], {}),
        ([{"sku": "{sku}", "qty": -1}], {}),
        ([{"sku": "{sku}", "qty": 10_001}], {}),
        ([{"sku": "{sku}", "qty": "1"}], {}),
        ([{"sku": "{sku}", "qty": 1.5}], {}),
        ([{"sku": "{sku}", "qty": None}], {}),
        ([{"sku": "{sku}"}], {}),
        ([{"sku": "{sku}", "qty": 1, "price": 1}], {}),
        ([{"sku": "{sku}", "qty": 1}], {"unit_price": 1}),
        ([{"sku": "{sku}", "qty": 1}, {"sku": "{sku}", "qty": 1}], {}),
        ([{"sku": "x" * 65, "qty": 1}], {}),
        ([{"sku": "bad sku!", "qty": 1}], {}),
        ([], {}),
        ([{"sku": "{sku}", "qty": 1}] * 1001, {}),
        ([{"sku": "{sku}", "qty": 1}], {"ttl_s": 0}),
        ([{"sku": "{sku}", "qty": 1}], {"ttl_s": "60"}),
        ([{"sku": "{sku}", "qty": 1}], {"ttl_s": 10**9}),
        ("not-a-list", {}),
        ([{"sku": "{sku}", "qty": 1}], {"order_id": "not-a-uuid"}),
    ],
)
async def test_malformed_reserve_requests_are_422_and_change_nothing(
    inventory: Any, items: Any, extra: dict[str, Any]
) -> None:
    product = await inventory.create_product(on_hand=5)
    if isinstance(items, list):
        items = [
            {k: (product["sku"] if v == "{sku}" else v) for k, v in item.items()} for item in items
        ]
    body = {"order_id": str(uuid.uuid4()), "items": items, **extra}

    response = await inventory.client.post(
        "/internal/inventory/reserve", json=body, headers=inventory.service
    )

    problem_body = problem(response, 422, "validation_error")
    assert problem_body["errors"]
    assert await inventory.stock(product["sku"]) == {"on_hand": 5, "reserved": 0, "version": 1}
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM reservation WHERE order_id::text = :id", {"id": body["order_id"]}
        )
        == 0
    )


async def test_limits_from_settings_are_enforced(start_inventory: Any, redis_url: str) -> None:
    async with start_inventory(
        redis_url, reservation_max_lines=2, reservation_max_ttl_s=60, reservation_default_ttl_s=30
    ) as inventory:
        products = [await inventory.create_product(on_hand=5) for _ in range(3)]
        too_many = await inventory.reserve([{"sku": p["sku"], "qty": 1} for p in products])
        too_long = await inventory.reserve([{"sku": products[0]["sku"], "qty": 1}], ttl_s=61)
        not_json = await inventory.client.post(
            "/internal/inventory/reserve",
            content=b"{not json",
            headers={**inventory.service, "content-type": "application/json"},
        )
        for product in products:
            assert (await inventory.stock(product["sku"]))["reserved"] == 0
    assert "At most 2 lines" in problem(too_many, 422, "validation_error")["detail"]
    assert "60" in problem(too_long, 422, "validation_error")["detail"]
    problem(not_json, 422, "validation_error")
