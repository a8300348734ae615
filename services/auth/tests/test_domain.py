"""Pure rules: phones, codes, refresh verdicts, roles, client addresses, settings."""

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from pydantic import SecretStr, ValidationError
from starlette.requests import Request

from auth_service.app import create_app
from auth_service.deps import client_ip
from auth_service.domain import roles
from auth_service.domain.linking import ContactVerdict, judge_contact
from auth_service.domain.otp import code_digest, codes_match, new_code, new_link_token
from auth_service.domain.phones import (
    InvalidPhoneNumber,
    normalise_contact_phone,
    normalise_phone,
)
from auth_service.domain.refresh import (
    RefreshVerdict,
    TokenState,
    hash_refresh_token,
    judge,
    new_refresh_token,
)
from auth_service.settings import AuthSettings
from jwt_core_lib import SigningKey
from storefront_kit.security import MissingSecret
from storefront_kit.settings import PlatformSettings


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+15550000001", "+15550000001"),
        (" +1 (555) 000-0001 ", "+15550000001"),
        ("+49 151 1234 5678", "+4915112345678"),
        ("+7 999 123-45-67", "+79991234567"),
        ("+44.7911.123456", "+447911123456"),
    ],
)
def test_phones_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "15550000001",
        "+1555",
        "+1-800-FLOWERS",
        "+999123",
        "+1555000000123",
        "",
        "+",
        "+1 555 000 0001 ext 2",
    ],
)
def test_impossible_phones_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalise_phone(raw)


def test_strict_phones_also_need_a_real_numbering_plan() -> None:
    assert normalise_phone("+12025550123", strict=True) == "+12025550123"
    with pytest.raises(InvalidPhoneNumber):
        normalise_phone("+15550000001", strict=True)  # 555 is no US area code


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("15550001234", "+15550001234"),  # Telegram often leaves the + out
        ("+15550001234", "+15550001234"),
        (" 4930123456 ", "+4930123456"),
    ],
)
def test_contact_numbers_are_normalised_with_or_without_plus(raw: str, e164: str) -> None:
    assert normalise_contact_phone(raw) == e164


@pytest.mark.parametrize(
    "raw", ["", "+", "++15550001234", "1555-000-1234", "call me", "12", "1" * 21, "+999123"]
)
def test_unreadable_contact_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalise_contact_phone(raw)


@pytest.mark.parametrize(
    ("sender", "card_user", "number", "verdict"),
    [
        (7, 7, "15550001234", ContactVerdict.PROVEN),
        (7, 7, "+15550001234", ContactVerdict.PROVEN),
        (7, 8, "15550001234", ContactVerdict.NOT_OWN),  # someone else's card
        (7, None, "15550001234", ContactVerdict.NOT_OWN),  # a card of no Telegram user
        (7, 7, None, ContactVerdict.NO_CONTACT),  # typed text
        (7, 7, "15550009999", ContactVerdict.MISMATCH),
        (7, 7, "not a number", ContactVerdict.INVALID_PHONE),
        (7, 8, "not a number", ContactVerdict.NOT_OWN),  # whose it is decides first
    ],
)
def test_only_the_senders_own_contact_with_the_number_proves_it(
    sender: int, card_user: int | None, number: str | None, verdict: ContactVerdict
) -> None:
    assert (
        judge_contact(
            sender_id=sender,
            contact_user_id=card_user,
            contact_phone=number,
            expected_phone="+15550001234",
        )
        is verdict
    )


def test_codes_are_six_digits_spread_over_the_whole_range() -> None:
    codes = [new_code() for _ in range(2000)]
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(set(codes)) > 1900
    assert any(c.startswith("0") for c in codes)
    assert len({new_link_token() for _ in range(100)}) == 100
    assert all(16 <= len(new_link_token()) <= 64 for _ in range(10))


def test_code_digests_are_keyed_bound_to_the_phone_and_compared_in_constant_time() -> None:
    digest = code_digest(pepper=b"p1", phone="+15550000001", code="123456")
    assert codes_match(digest, pepper=b"p1", phone="+15550000001", code="123456")
    assert not codes_match(digest, pepper=b"p1", phone="+15550000001", code="123457")
    assert not codes_match(digest, pepper=b"p2", phone="+15550000001", code="123456")
    assert not codes_match(digest, pepper=b"p1", phone="+15550000002", code="123456")
    assert "123456" not in digest


def test_refresh_tokens_are_random_and_stored_as_sha256() -> None:
    token = new_refresh_token()
    assert len(token) >= 43
    assert token != new_refresh_token()
    assert len(hash_refresh_token(token)) == 64
    assert hash_refresh_token(token) == hash_refresh_token(token)


def test_refresh_verdicts() -> None:
    now = datetime.now(UTC)
    later = now + timedelta(days=1)
    assert judge(TokenState(later, None, None), now=now) is RefreshVerdict.ROTATE
    assert judge(TokenState(now, None, None), now=now) is RefreshVerdict.EXPIRED
    assert judge(TokenState(later, now, None), now=now) is RefreshVerdict.REUSED
    assert judge(TokenState(later, None, now), now=now) is RefreshVerdict.REUSED
    # a spent token is reuse even after it expired: the family still gets revoked
    assert judge(TokenState(now, now, None), now=later) is RefreshVerdict.REUSED


def test_staff_roles() -> None:
    assert roles.is_staff(["admin"])
    assert roles.is_staff(["customer", "moderator"])
    assert not roles.is_staff(["customer"])
    assert not roles.is_staff([])


def test_roles_are_known_distinct_and_ordered() -> None:
    assert roles.normalise(["customer", "admin", "customer"]) == ["admin", "customer"]
    with pytest.raises(ValueError, match="root"):
        roles.normalise(["root"])


def _request(peer: str, headers: dict[str, str], trusted: str = "127.0.0.1") -> Request:
    class _State:
        settings = AuthSettings(platform=PlatformSettings(forwarded_allow_ips=trusted))

    class _App:
        state = _State()

    scope: dict[str, Any] = {
        "type": "http",
        "client": (peer, 1234),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "app": _App(),
    }
    return Request(scope)


def test_client_ip_believes_the_gateway_only() -> None:
    gateway = "127.0.0.1"
    assert client_ip(_request(gateway, {"X-Real-IP": "203.0.113.9"})) == "203.0.113.9"
    assert client_ip(_request(gateway, {"X-Forwarded-For": "203.0.113.9, 10.0.0.1"})) == (
        "203.0.113.9"
    )
    assert client_ip(_request(gateway, {})) == gateway
    assert client_ip(_request(gateway, {"X-Real-IP": "not-an-ip"})) == gateway
    # anyone else's headers are ignored: the socket peer counts
    assert client_ip(_request("198.51.100.4", {"X-Real-IP": "203.0.113.9"})) == "198.51.100.4"
    assert client_ip(_request("10.1.2.3", {"X-Real-IP": "203.0.113.9"}, "10.0.0.0/8")) == (
        "203.0.113.9"
    )
    assert client_ip(_request("10.1.2.3", {"X-Real-IP": "2001:db8::1"}, "*")) == "2001:db8::1"


def _field_keys() -> dict[str, Any]:
    """Real (random) encryption and blind-index keys, as production needs."""
    key = base64.b64encode(os.urandom(32)).decode()
    return {
        "encryption_keys": SecretStr(json.dumps({"k1": key})),
        "blind_index_key": SecretStr(base64.b64encode(os.urandom(32)).decode()),
    }


def test_production_refuses_placeholder_secrets() -> None:
    production = PlatformSettings(environment="production")
    pem = SecretStr(SigningKey.generate().to_pem())
    pepper = SecretStr("p" * 32)
    with pytest.raises(ValidationError, match="AUTH_JWT_SIGNING_KEY"):
        AuthSettings(platform=production, otp_pepper=pepper, **_field_keys())
    with pytest.raises(ValidationError, match="AUTH_OTP_PEPPER"):
        AuthSettings(platform=production, jwt_signing_key=pem, **_field_keys())
    for placeholder in ("encryption_keys", "blind_index_key"):
        keys = _field_keys() | {placeholder: SecretStr("changeme")}
        with pytest.raises(ValidationError, match=f"AUTH_{placeholder.upper()}"):
            AuthSettings(platform=production, jwt_signing_key=pem, otp_pepper=pepper, **keys)
    AuthSettings(platform=production, jwt_signing_key=pem, otp_pepper=pepper, **_field_keys())


@pytest.mark.parametrize("environment", ["development", "production"])
def test_auth_refuses_to_start_without_its_signing_keys_outside_tests(environment: Any) -> None:
    platform = PlatformSettings(environment=environment)
    service_pem = SecretStr(SigningKey.generate().to_pem())
    pepper = SecretStr("p" * 32)
    no_user_key = AuthSettings.model_construct(
        platform=platform, service_token_key=service_pem, otp_pepper=pepper
    )
    with pytest.raises(MissingSecret, match="AUTH_JWT_SIGNING_KEY"):
        create_app(no_user_key)
    no_service_key = AuthSettings(
        platform=platform,
        jwt_signing_key=SecretStr(SigningKey.generate().to_pem()),
        otp_pepper=pepper,
        **_field_keys(),
    )
    with pytest.raises(MissingSecret, match="AUTH_SERVICE_TOKEN_KEY"):
        create_app(no_service_key)
    # Tests alone may run on throwaway keys.
    create_app(AuthSettings(platform=PlatformSettings(environment="test")))


def test_signing_keys_must_be_ed25519_pems_and_are_never_echoed() -> None:
    # A real private key of the wrong type, made here: no key material in the repo.
    wrong_type = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    with pytest.raises(ValidationError, match="Ed25519") as raised:
        AuthSettings(jwt_signing_key=SecretStr(wrong_type))
    key_body = wrong_type.splitlines()[1]
    assert key_body not in str(raised.value)
    with pytest.raises(ValidationError, match="Ed25519"):
        AuthSettings(jwt_previous_keys=[SecretStr("nope")])


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValidationError, match="rate limit"):
        AuthSettings(otp_phone_rate_limit="lots")
    with pytest.raises(ValidationError):
        AuthSettings(otp_ttl_s=600)  # docs/design.md §7: at most 5 minutes
    with pytest.raises(ValidationError):
        AuthSettings(otp_max_attempts=6)
    with pytest.raises(ValidationError):
        AuthSettings(notifications_url="ftp://x")
