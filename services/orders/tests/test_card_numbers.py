"""Card numbers never enter (docs/design.md §7): refused in any field, never stored,
repeated or logged; the payment token must look like a provider's token."""

import uuid
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from orders_service.models import CustomerOrder
from orders_service.schemas import OrderCreate
from storefront_stack.shop import UK_ADDRESS as ADDRESS

PAYMENT = {"method": "card", "token": "tok_visa"}
CARD = "4111111111111111"

Orders = Any  # the `orders` fixture of conftest.py


def body(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "items": [{"sku": "SKU-1", "qty": 1}],
        "shipping_address": dict(ADDRESS),
        "payment": dict(PAYMENT),
    }
    for path, value in changes.items():
        section, _, field = path.partition("__")
        payload[section][field] = value
    return payload


async def checkout(orders: Orders, user: str, payload: dict[str, Any]) -> Any:
    return await orders.client.post(
        "/api/v1/orders",
        json=payload,
        headers={**orders.keys.headers(user), "Idempotency-Key": uuid.uuid4().hex},
    )


async def count_orders(orders: Orders, user: str) -> int:
    async with orders.sessionmaker() as session:
        query = select(func.count()).select_from(CustomerOrder).where(CustomerOrder.user_id == user)
        return int((await session.execute(query)).scalar_one())


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record logged during the test, as raw as structlog handed it over."""
    return "\n".join(f"{record.msg!r} {record.args!r}" for record in caplog.records)


def digits_of(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payment__token", CARD),
        ("payment__token", "tok_4111111111111111"),
        ("payment__token", "4111 1111 1111 1111"),
        ("shipping_address__line1", "4111-1111-1111-1111"),
        ("shipping_address__line2", "card 5555 5555 5555 4444 exp 12/28"),
        ("shipping_address__name", "Ada 378282246310005"),
        ("shipping_address__notes", "my card is 4000-0000-0000-0000-006"),
        ("shipping_address__city", "4222222222222"),
    ],
)
async def test_a_card_number_in_any_field_is_refused_and_never_stored_echoed_or_logged(
    orders: Orders, caplog: pytest.LogCaptureFixture, field: str, value: str
) -> None:
    user = f"card-{uuid.uuid4().hex[:8]}"
    response = await checkout(orders, user, body(**{field: value}))

    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "card_number_refused"
    assert digits_of(value) not in digits_of(response.text)
    assert await count_orders(orders, user) == 0
    logged = logged_text(caplog)
    assert "/api/v1/orders" in logged  # the access log line was captured
    assert digits_of(value) not in digits_of(logged)


async def test_a_card_number_sent_as_a_json_number_is_refused(orders: Orders) -> None:
    user = f"card-{uuid.uuid4().hex[:8]}"
    payload = body()
    payload["items"][0]["qty"] = int(CARD)
    response = await checkout(orders, user, payload)
    assert response.status_code == 422
    assert response.json()["code"] == "card_number_refused"
    assert await count_orders(orders, user) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("shipping_address__line2", "4111111111111112"),  # 16 digits, Luhn fails
        ("shipping_address__notes", "ring 4111 1111 1111 1112 twice"),
        ("shipping_address__phone", "+4915112345678"),  # E.164 that passes Luhn
        ("payment__token", "tok_1N3xYz2eZvKYlo2C0XjMr8vQ"),
        ("payment__token", "pm_card_visa"),
    ],
)
async def test_strings_that_are_not_card_numbers_are_accepted(
    orders: Orders, field: str, value: str
) -> None:
    user = f"card-{uuid.uuid4().hex[:8]}"
    response = await checkout(orders, user, body(**{field: value}))
    assert response.status_code in (201, 202), response.text
    assert await count_orders(orders, user) == 1


@pytest.mark.parametrize(
    "token",
    [
        "s3cret value",
        "visa",
        "tok_",
        "tok_" + "a" * 101,
        "tok-visa",
        "sk_live_abcdef",
        "tok_visa\n",
        "4111111111111112",  # digits, but no token
    ],
)
async def test_a_token_that_is_not_a_provider_token_is_refused_without_being_repeated(
    orders: Orders, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    user = f"card-{uuid.uuid4().hex[:8]}"
    response = await checkout(orders, user, body(payment__token=token))

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [e["loc"] for e in problem["errors"]] == [["body", "payment", "token"]]
    assert token.strip() not in response.text
    assert "input" not in problem["errors"][0]
    assert await count_orders(orders, user) == 0
    logged = logged_text(caplog)
    assert "/api/v1/orders" in logged  # the access log line was captured
    assert token.strip() not in logged


def test_the_model_itself_refuses_a_card_number_without_naming_it() -> None:
    with pytest.raises(ValidationError) as caught:
        OrderCreate.model_validate(body(shipping_address__line2="4111 1111 1111 1111"))
    errors = caught.value.errors()
    assert [e["type"] for e in errors] == ["card_number_refused"]
    assert "4111" not in errors[0]["msg"]
