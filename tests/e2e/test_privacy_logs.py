"""No personal data or credential in any service's log (issue 19, docs/design.md §7).

A customer logs in through the Telegram stand-in (otp/send, the contact, the code,
otp/verify), refreshes the token, checks out (the receipt reaches the chat) and tries to
pay with a card number; then every service's log is searched for the phone, the code,
the tokens, the payment token, the address and the card number. A request whose path
holds the phone, a token and a card number is sent to every service, which logs its
path: each must show it masked.
"""

import asyncio
import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from jwt_core_lib import SigningKey, TokenIssuer
from storefront_stack.logins import CODE, messages, new_chat_id, new_phone, telegram_login
from storefront_stack.platform import Platform
from storefront_stack.shop import create_product, product_body
from storefront_stack.topology import SERVICES

pytestmark = pytest.mark.e2e

DEADLINE_S = 30.0
CARD = "4000 0566 5566 5556"  # a published Visa debit test number


def admin_headers(platform: Platform) -> dict[str, str]:
    issuer = TokenIssuer(
        signing_key=SigningKey.from_pem(platform.platform_env["AUTH_JWT_SIGNING_KEY"]),
        issuer="storefront-auth",
    )
    token = issuer.issue(
        subject=str(uuid.uuid4()),
        audience="storefront",
        ttl=timedelta(minutes=10),
        roles=("admin",),
    )
    return {"Authorization": f"Bearer {token}"}


def _service_logs(platform: Platform) -> dict[str, str]:
    logs = platform.state_dir / "logs"
    return {s.name: Path(logs / f"{s.name}.log").read_text(errors="replace") for s in SERVICES}


async def _receipt(client: httpx.AsyncClient, chat_id: int, total: str) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while not any(total in m["text"] for m in await messages(client, chat_id)):
            await asyncio.sleep(0.2)


async def test_login_and_checkout_leave_no_personal_data_or_token_in_any_log(
    platform: Platform,
) -> None:
    assert platform.endpoints is not None
    tag = uuid.uuid4().hex[:10]
    phone = new_phone()
    chat_id = new_chat_id()
    address = {
        "name": f"Privacy Person {tag}",
        "line1": f"{tag} Discreet Lane",
        "line2": f"Flat {tag}",
        "city": f"Hush{tag}",
        "postal_code": f"P{tag[:8]}",
        "country": "DE",
        "phone": phone,
        "notes": f"leave with {tag} next door",
    }
    payment_token = f"tok_privacy_{tag}"
    sku = f"PRIVACY-{tag.upper()}"

    async with httpx.AsyncClient(base_url=platform.endpoints.gateway_url, timeout=15) as client:
        await create_product(
            client,
            admin_headers(platform),
            product_body(sku, name="Quiet kettle", price=1234, stock=5, brand="Hush"),
        )

        tokens = await telegram_login(client, phone, chat_id, deadline_s=DEADLINE_S)
        codes = [m for msg in await messages(client, chat_id) for m in CODE.findall(msg["text"])]
        assert codes, "the code reached the chat"
        refreshed = await client.post(
            "/api/v1/auth/token/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        access = refreshed.json()["access_token"]
        auth = {"Authorization": f"Bearer {access}"}

        ordered = await client.post(
            "/api/v1/orders",
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            json={
                "items": [{"sku": sku, "qty": 1}],
                "shipping_address": address,
                "payment": {"method": "card", "token": payment_token},
            },
        )
        assert ordered.status_code in (201, 202), ordered.text
        await _receipt(client, chat_id, "12.34")

        refused = await client.post(
            "/api/v1/orders",
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            json={
                "items": [{"sku": sku, "qty": 1}],
                "shipping_address": {**address, "line2": CARD},
                "payment": {"method": "card", "token": payment_token},
            },
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "card_number_refused"
        assert CARD not in refused.text
        mine = await client.get("/api/v1/orders", headers=auth)
        assert mine.json()["total"] == 1  # the refused checkout left no order

    # A URL holding personal data reaches every service's access log: the path is logged
    # as requested, so only the scrubber stands between these values and the log.
    probe = f"/privacy-probe/{phone}/{access}/{CARD.replace(' ', '-')}/{payment_token}"
    for service in SERVICES:
        url = platform.endpoints.service_url(service.name)
        async with httpx.AsyncClient(base_url=url, timeout=15) as direct:
            answered = await direct.get(probe)
        assert answered.status_code == 404, (service.name, answered.status_code)

    # A request's log line is written once its response went out: wait for all six.
    async with asyncio.timeout(DEADLINE_S):
        while not all("/privacy-probe/" in text for text in _service_logs(platform).values()):
            await asyncio.sleep(0.2)
    logs = _service_logs(platform)
    for service, text in logs.items():
        probed = [line for line in text.splitlines() if "/privacy-probe/" in line]
        assert all("[redacted]" in line for line in probed), (service, probed)
    secrets = {
        "phone": phone,
        "phone without +": phone.removeprefix("+"),
        "first refresh token": tokens["refresh_token"],
        "first access token": tokens["access_token"],
        "refreshed access token": access,
        "refreshed refresh token": refreshed.json()["refresh_token"],
        "payment token": payment_token,
        "card number": CARD,
        "card number digits": CARD.replace(" ", ""),
        **{f"address {key}": value for key, value in address.items() if key != "country"},
        "address tag": tag,
    }
    for code in codes:
        secrets[f"code {code}"] = code
    leaks = []
    for service, text in logs.items():
        for what, value in secrets.items():
            pattern = rf"(?<!\d){re.escape(value)}(?!\d)" if value.isdigit() else re.escape(value)
            if re.search(pattern, text):
                leaks.append(f"{what} in {service}.log")
    assert leaks == []
