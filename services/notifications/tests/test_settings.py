"""Settings: development works out of the box, production refuses the stand-in's secrets."""

import base64
import json
import os

import pytest
from pydantic import SecretStr, ValidationError

from notifications_service.settings import DEV_BOT_TOKEN, NotificationsSettings
from storefront_kit.settings import PlatformSettings

REAL_TOKEN = "7000000001:AAH-real_looking_token"


def _field_keys() -> dict[str, SecretStr]:
    return {
        "encryption_keys": SecretStr(json.dumps({"k1": base64.b64encode(os.urandom(32)).decode()})),
        "blind_index_key": SecretStr(base64.b64encode(os.urandom(32)).decode()),
    }


def production(**values: object) -> NotificationsSettings:
    platform = PlatformSettings(environment="production")
    return NotificationsSettings(platform=platform, **{**_field_keys(), **values})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["encryption_keys", "blind_index_key"])
def test_production_refuses_placeholder_encryption_keys(field: str) -> None:
    with pytest.raises(ValidationError, match=f"NOTIFICATIONS_{field.upper()}"):
        production(
            telegram_bot_token=SecretStr(REAL_TOKEN),
            telegram_webhook_secret=SecretStr("s3cr3t-value"),
            **{field: SecretStr("changeme")},
        )


def test_development_defaults_talk_to_the_stand_in() -> None:
    settings = NotificationsSettings()

    assert settings.telegram_bot_token.get_secret_value() == DEV_BOT_TOKEN
    assert settings.telegram_webhook_url is None
    assert settings.consumer_group == "notifications"
    assert settings.consumer_stream == "orders.events"


def test_production_refuses_the_development_token_and_a_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="NOTIFICATIONS_TELEGRAM_BOT_TOKEN"):
        production(telegram_webhook_secret=SecretStr("s3cr3t-value"))
    with pytest.raises(ValidationError, match="NOTIFICATIONS_TELEGRAM_WEBHOOK_SECRET"):
        production(telegram_bot_token=SecretStr(REAL_TOKEN))

    settings = production(
        telegram_bot_token=SecretStr(REAL_TOKEN), telegram_webhook_secret=SecretStr("s3cr3t-value")
    )
    assert settings.telegram_bot_token.get_secret_value() == REAL_TOKEN


def test_malformed_values_are_refused_without_echoing_the_token() -> None:
    with pytest.raises(ValidationError) as caught:
        NotificationsSettings(telegram_bot_token=SecretStr("not a token with spaces"))
    assert "not a token with spaces" not in str(caught.value)
    with pytest.raises(ValidationError, match="allows only"):
        NotificationsSettings(telegram_webhook_secret=SecretStr("has spaces"))
    with pytest.raises(ValidationError, match="http"):
        NotificationsSettings(telegram_webhook_url="ftp://example.org/hook")


def test_the_env_example_placeholder_token_means_the_stand_in_and_fails_production() -> None:
    settings = NotificationsSettings(telegram_bot_token=SecretStr("changeme"))

    assert settings.telegram_bot_token.get_secret_value() == DEV_BOT_TOKEN
    with pytest.raises(ValidationError, match="NOTIFICATIONS_TELEGRAM_BOT_TOKEN"):
        production(
            telegram_bot_token=SecretStr("changeme"),
            telegram_webhook_secret=SecretStr("s3cr3t-value"),
        )


def test_a_lease_as_long_as_the_claim_idle_time_is_refused() -> None:
    with pytest.raises(ValidationError, match="claim_lease_s"):
        NotificationsSettings(claim_lease_s=60, consumer_claim_idle_ms=60_000)


def test_a_dead_consumer_threshold_a_live_replica_could_reach_is_refused() -> None:
    # A live replica is idle for up to one XREADGROUP block between two reads.
    with pytest.raises(ValidationError, match="consumer_dead_idle_ms"):
        NotificationsSettings(consumer_dead_idle_ms=2000, consumer_block_ms=2000)
    assert NotificationsSettings(consumer_dead_idle_ms=2001, consumer_block_ms=2000)


def test_an_empty_webhook_url_means_none_and_urls_lose_their_trailing_slash() -> None:
    settings = NotificationsSettings(
        telegram_webhook_url="", auth_url="http://auth:8000/", telegram_api_url="http://tg/"
    )

    assert settings.telegram_webhook_url is None
    assert settings.auth_url == "http://auth:8000"
    assert settings.telegram_api_url == "http://tg"
