import json
import logging

import pytest

from storefront_kit.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    scrub_sensitive,
    scrub_text,
)

JWT = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0"
    ".eyJzdWIiOiJ1c2VyLTEiLCJhdWQiOiJzdG9yZWZyb250In0"
    ".MEUCIQDx3v0yq2Qd7kq0bJ6w3u0fC4lG1Q"
)
PHONE = "+4915112345678"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"


def scrub(**event: object) -> dict[str, object]:
    return dict(scrub_sensitive(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key",
    [
        "phone",
        "Phone_Number",
        "admin_phone",
        "token",
        "access_token",
        "refresh_token",
        "link_token",
        "authorization",
        "Authorization",
        "set-cookie",
        "shipping_address",
        "line1",
        "line2",
        "postal_code",
        "password",
        "payment_method",
        "otp",
        "telegram_link",
    ],
)
def test_values_under_sensitive_keys_are_masked(key: str) -> None:
    assert scrub(event="x", **{key: "anything at all"})[key] == REDACTED


def test_a_code_is_masked_when_it_is_a_one_time_code_and_kept_when_it_is_a_problem_code() -> None:
    assert scrub(event="x", code="123456")["code"] == REDACTED
    assert scrub(event="x", code=123456)["code"] == REDACTED
    assert scrub(event="x", code="rate_limited")["code"] == "rate_limited"


def test_nested_structures_are_masked_by_key_and_value() -> None:
    event = scrub(
        event="request",
        body={
            "shipping_address": {"line1": "1 Main St", "city": "Berlin"},
            "payment": {"method": "card", "token": "tok_visa"},
            "contacts": [{"phone": PHONE}, f"call {PHONE}"],
            "items": [{"sku": "A-1", "qty": 2}],
        },
    )
    body = event["body"]
    assert body == {
        "shipping_address": REDACTED,
        "payment": {"method": "card", "token": REDACTED},
        "contacts": [{"phone": REDACTED}, f"call {REDACTED}"],
        "items": [{"sku": "A-1", "qty": 2}],
    }


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"verify failed for {PHONE}", PHONE),
        (f"got token {JWT} from client", JWT),
        (f"header Bearer {JWT}", JWT),
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ("charge tok_1N3xYz2eZvKYlo2C0 failed", "tok_1N3xYz2eZvKYlo2C0"),
        ("pay with pm_card_visa", "pm_card_visa"),
        (f"POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage 502", BOT_TOKEN),
        ("open https://t.me/storefront_bot?start=Zm9vYmFyYmF6cXV4", "Zm9vYmFyYmF6cXV4"),
        ("GET /verify?phone=%2B4915112345678&code=123456", "123456"),
        ("card 4111 1111 1111 1111 declined", "4111 1111 1111 1111"),
        ("card 4111111111111111 declined", "4111111111111111"),
    ],
)
def test_secrets_in_free_text_are_masked(text: str, secret: str) -> None:
    scrubbed = scrub_text(text)
    assert secret not in scrubbed
    assert REDACTED in scrubbed
    assert scrub(event=text)["event"] == scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "otp_sent",
        "http_request",
        "order 0190c5f2-7b7e-7c1e-9d1a-1234567890ab confirmed",
        "2026-12-07T03:12:54.309896Z",
        "took 4111111111111112 ms",  # not Luhn
        "stock_changed for SKU-1",
        "listening on 127.0.0.1:8000",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert scrub_text(text) == text


def test_short_and_non_string_values_pass_through_untouched() -> None:
    event = scrub(event="x", status=201, ok=True, ratio=0.5, sku="A-1", none=None)
    assert event == {
        "event": "x",
        "status": 201,
        "ok": True,
        "ratio": 0.5,
        "sku": "A-1",
        "none": None,
    }


def test_configured_logging_scrubs_structlog_stdlib_and_exception_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(service="kit-test", level="INFO", json=True)
    get_logger("kit.test").info("otp_verified", phone=PHONE, code="654321", outcome="ok")
    logging.getLogger("some.library").warning("refresh failed for %s with %s", PHONE, JWT)
    try:
        raise ValueError(f"card 4111111111111111 of {PHONE} refused")
    except ValueError:
        get_logger("kit.test").exception("crashed")

    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [line["event"].split(" ")[0] for line in lines] == ["otp_verified", "refresh", "crashed"]
    assert lines[0]["outcome"] == "ok"
    assert lines[0]["service"] == "kit-test"
    assert "ValueError" in lines[2]["exception"]
    for secret in (PHONE, "654321", JWT, "4111111111111111"):
        assert secret not in out


def test_the_credential_scheme_is_matched_in_any_case() -> None:
    assert "abc.def" not in scrub_text("authorization: bearer abc.def")
    assert "abc.def" not in scrub_text("AUTHORIZATION: BEARER abc.def")
    assert "dXNlcjpwYXNz" not in scrub_text("basic dXNlcjpwYXNz sent")
