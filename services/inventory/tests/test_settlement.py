"""Release, commit and restock as one statement: one outcome per reservation under real
concurrency, no deadlock across shared skus, nothing half done, an event id each."""

import asyncio
import time
import uuid
from typing import Any

from storefront_stack.checks import problem


async def _settle(inventory: Any, action: str, order_id: uuid.UUID) -> Any:
    return await inventory.client.post(
        f"/internal/inventory/{action}", json={"order_id": str(order_id)}, headers=inventory.service
    )


async def test_concurrent_commits_and_releases_of_one_reservation_have_one_outcome(
    inventory: Any,
) -> None:
    # 30 two-line holds; each is committed three times and released three times at once.
    # Whichever comes first decides: the same kind answers 200 with it, the other 409.
    a, b = [await inventory.create_product(on_hand=200) for _ in range(2)]
    orders = [uuid.uuid4() for _ in range(30)]
    for order_id in orders:
        held = await inventory.reserve(
            [{"sku": a["sku"], "qty": 1}, {"sku": b["sku"], "qty": 2}], order_id=order_id
        )
        assert held.status_code == 200, held.text
    calls = [(order_id, action) for order_id in orders for action in ("commit", "release") * 3]
    line = {"unit_price": 1250, "currency": "EUR", "name": "Test product"}
    lines = sorted(  # in sku order
        [{"sku": a["sku"], "qty": 1, **line}, {"sku": b["sku"], "qty": 2, **line}],
        key=lambda item: item["sku"],
    )

    responses = await asyncio.gather(
        *(_settle(inventory, action, order_id) for order_id, action in calls)
    )

    outcome: dict[uuid.UUID, str] = {}
    for order_id in orders:
        answers = [
            (action, response)
            for (order, action), response in zip(calls, responses, strict=True)
            if order == order_id
        ]
        winners = {response.json()["status"] for _, response in answers if response.is_success}
        assert len(winners) == 1, winners
        outcome[order_id] = winners.pop()
        assert outcome[order_id] in ("committed", "released")
        winning_action = "commit" if outcome[order_id] == "committed" else "release"
        for action, response in answers:
            if action == winning_action:
                assert response.status_code == 200, response.text
                assert response.json()["lines"] == lines
            else:
                body = problem(response, 409, "reservation_state")
                assert body["reservation_status"] == outcome[order_id]
    stored = await inventory.scalar(
        "SELECT json_object_agg(order_id, status) FROM reservation WHERE order_id = ANY(:ids)",
        {"ids": orders},
    )
    assert stored == {str(order_id): status for order_id, status in outcome.items()}
    sold = sum(1 for status in outcome.values() if status == "committed")
    for product, qty in ((a, 1), (b, 2)):
        stock = await inventory.stock(product["sku"])
        # One version for the creation, one per hold, one per settlement: each settled once.
        assert stock == {"on_hand": 200 - qty * sold, "reserved": 0, "version": 1 + 30 + 30}
        versions = [
            event["data"]["version"]
            for event in await inventory.outbox("stock.changed", product["sku"])
        ]
        assert sorted(versions) == list(range(1, 1 + 30 + 30 + 1))


async def test_settlements_and_holds_over_shared_skus_in_both_line_orders_never_deadlock(
    inventory: Any,
) -> None:
    skus = [(await inventory.create_product(on_hand=1000))["sku"] for _ in range(3)]
    pairs = [(x, y) for x in skus for y in skus if x != y]
    held = {uuid.uuid4(): pairs[n % len(pairs)] for n in range(60)}
    for order_id, (x, y) in held.items():
        response = await inventory.reserve(
            [{"sku": x, "qty": 1}, {"sku": y, "qty": 1}], order_id=order_id
        )
        assert response.status_code == 200, response.text
    fresh = {uuid.uuid4(): pairs[n % len(pairs)] for n in range(60)}
    actions = ("commit", "release")

    responses = await asyncio.gather(
        *(_settle(inventory, actions[n % 2], order_id) for n, order_id in enumerate(held)),
        *(
            inventory.reserve([{"sku": x, "qty": 1}, {"sku": y, "qty": 1}], order_id=order_id)
            for order_id, (x, y) in fresh.items()
        ),
    )

    assert [r.status_code for r in responses] == [200] * 120
    assert {r.json()["status"] for r in responses[:60]} == {"committed", "released"}
    committed = [order_id for n, order_id in enumerate(held) if n % 2 == 0]
    for sku in skus:
        sold = sum(1 for order_id in committed if sku in held[order_id])
        still_held = sum(1 for pair in fresh.values() if sku in pair)
        stock = await inventory.stock(sku)
        assert (stock["on_hand"], stock["reserved"]) == (1000 - sold, still_held)


async def _two_line_hold(inventory: Any) -> tuple[dict[str, Any], dict[str, Any], uuid.UUID]:
    """Two new products of 10 and an order holding 2 of the first and 3 of the second."""
    a, b = [await inventory.create_product(on_hand=10) for _ in range(2)]
    order_id = uuid.uuid4()
    held = await inventory.reserve(
        [{"sku": a["sku"], "qty": 2}, {"sku": b["sku"], "qty": 3}], order_id=order_id
    )
    assert held.status_code == 200, held.text
    return a, b, order_id


async def _unchanged(inventory: Any, order_id: uuid.UUID, first_sku: str, events: int) -> None:
    """The hold of :func:`_two_line_hold` as it was: still reserved, the first line's stock
    untouched, no event staged since there were ``events``."""
    status = await inventory.scalar(
        "SELECT status FROM reservation WHERE order_id = :id", {"id": order_id}
    )
    assert status == "reserved"
    assert await inventory.stock(first_sku) == {"on_hand": 10, "reserved": 2, "version": 2}
    assert await inventory.scalar("SELECT count(*) FROM outbox_event") == events


async def test_a_settlement_that_cannot_change_one_line_changes_nothing(inventory: Any) -> None:
    a, b, order_id = await _two_line_hold(inventory)
    # b's hold gone behind the reservation's back: giving 3 back would leave reserved < 0,
    # which the check constraint refuses after a's line was already changed.
    async with inventory.engine.begin() as connection:
        await connection.exec_driver_sql(
            "UPDATE stock SET reserved = 0 WHERE sku = $1", (b["sku"],)
        )
    events_before = await inventory.scalar("SELECT count(*) FROM outbox_event")

    failed = await _settle(inventory, "release", order_id)

    problem(failed, 500, "internal_error")
    await _unchanged(inventory, order_id, a["sku"], events_before)
    # Put right, the same release goes through whole.
    async with inventory.engine.begin() as connection:
        await connection.exec_driver_sql(
            "UPDATE stock SET reserved = 3 WHERE sku = $1", (b["sku"],)
        )
    released = await _settle(inventory, "release", order_id)
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "released"
    assert (await inventory.stock(a["sku"]))["reserved"] == 0
    assert (await inventory.stock(b["sku"]))["reserved"] == 0


async def test_a_line_without_its_stock_row_moves_nothing(inventory: Any) -> None:
    a, b, order_id = await _two_line_hold(inventory)
    async with inventory.engine.begin() as connection:  # never done by the service
        await connection.exec_driver_sql("DELETE FROM stock WHERE sku = $1", (b["sku"],))
    events_before = await inventory.scalar("SELECT count(*) FROM outbox_event")

    failed = await _settle(inventory, "commit", order_id)

    problem(failed, 500, "internal_error")
    await _unchanged(inventory, order_id, a["sku"], events_before)


async def test_each_settled_line_stages_an_event_with_a_time_ordered_id_of_its_own(
    inventory: Any,
) -> None:
    a, b = [await inventory.create_product(on_hand=10) for _ in range(2)]
    order_id = uuid.uuid4()
    held = await inventory.reserve(
        [{"sku": b["sku"], "qty": 1}, {"sku": a["sku"], "qty": 1}], order_id=order_id
    )
    assert held.status_code == 200, held.text
    before_ms = time.time_ns() // 1_000_000

    committed = await _settle(inventory, "commit", order_id)
    after_ms = time.time_ns() // 1_000_000

    assert committed.status_code == 200, committed.text
    async with inventory.engine.connect() as connection:
        rows = (
            await connection.exec_driver_sql(
                "SELECT id, envelope FROM outbox_event WHERE event_type = 'stock.changed'"
                " AND envelope->'data'->>'sku' = ANY($1)"
                " AND (envelope->'data'->>'version')::int = 3",
                ([a["sku"], b["sku"]],),
            )
        ).all()
    assert len(rows) == 2
    ids = [row.id for row in rows]
    assert len(set(ids)) == 2
    for row in rows:
        assert str(row.id) == row.envelope["id"]
        assert row.id.version == 7
        assert row.id.variant == uuid.RFC_4122
        # The first 48 bits are the millisecond it was made (the same machine's clock).
        assert before_ms - 1000 <= row.id.int >> 80 <= after_ms + 1000
