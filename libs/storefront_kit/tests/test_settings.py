"""Settings refuse unsafe configurations."""

import json
from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from jwt_core_lib import SigningKey
from storefront_kit.settings import DatabaseSettingsMixin, PlatformSettings, ServiceSettings


class InventoryLike(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_", env_file=None, extra="ignore")
    service_name: ClassVar[str] = "inventory"


def test_a_service_reads_its_own_key_and_its_callers_public_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own, orders_old, orders_new = (
        SigningKey.generate(),
        SigningKey.generate(),
        SigningKey.generate(),
    )
    monkeypatch.setenv("INVENTORY_SERVICE_TOKEN_KEY", own.to_pem())
    callers = {"orders": [orders_old.x, orders_new.x], "catalog": [SigningKey.generate().x]}
    monkeypatch.setenv("INVENTORY_SERVICE_TOKEN_CALLERS", json.dumps(callers))
    settings = InventoryLike()
    assert SigningKey.from_pem(settings.service_token_key.get_secret_value()).kid == own.kid
    assert settings.service_token_callers == callers
    assert InventoryLike.env_name("service_token_key") == "INVENTORY_SERVICE_TOKEN_KEY"


@pytest.mark.parametrize(
    "callers",
    [
        {"orders": ["not-a-key"]},
        {"orders": []},
        {"Orders!": [SigningKey.generate().x]},
        {"orders": [SigningKey.generate().x for _ in range(5)]},
    ],
)
def test_callers_must_be_service_names_with_raw_ed25519_public_keys(
    callers: dict[str, list[str]],
) -> None:
    with pytest.raises(ValidationError, match="service_token_callers"):
        InventoryLike(service_token_callers=callers)


def test_the_service_key_must_be_an_ed25519_private_key_and_is_never_echoed() -> None:
    # A PEM header over garbage, assembled so no tracked file looks like it holds a key.
    broken_pem = "-----BEGIN " + "PRIVATE KEY-----\nnope"
    with pytest.raises(ValidationError) as refused:
        InventoryLike(service_token_key=SecretStr(broken_pem))
    assert "nope" not in str(refused.value)


def test_cors_wildcard_with_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="wildcard"):
        PlatformSettings(cors_allow_origins=["*"], cors_allow_credentials=True)


def test_settings_read_their_prefix_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREFRONT_JWT_ISSUER", "issuer-from-env")
    monkeypatch.setenv("STOREFRONT_CORS_ALLOW_ORIGINS", '["https://a.example"]')
    settings = PlatformSettings()
    assert settings.jwt_issuer == "issuer-from-env"
    assert settings.cors_allow_origins == ["https://a.example"]


def test_database_url_is_normalised_to_asyncpg() -> None:
    settings = DatabaseSettingsMixin(database_url="postgres://u@h:5432/db")
    assert settings.database_url == "postgresql+asyncpg://u@h:5432/db"
    with pytest.raises(ValidationError):
        DatabaseSettingsMixin(database_url="mysql://u@h/db")


def test_a_service_key_shared_with_a_caller_is_refused() -> None:
    shared = SigningKey.generate()
    with pytest.raises(ValidationError, match="INVENTORY_SERVICE_TOKEN_KEY is also listed"):
        InventoryLike(
            service_token_key=SecretStr(shared.to_pem()),
            service_token_callers={"orders": [shared.x]},
        )


@pytest.mark.parametrize(
    "dsn",
    ["", "http://storefront@127.0.0.1:8204/1", "https://abc123@o1.ingest.example/sub/42"],
)
def test_a_sentry_dsn_is_empty_or_a_dsn(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    monkeypatch.setenv("INVENTORY_SENTRY_DSN", dsn)
    assert InventoryLike().sentry_dsn == dsn
    assert PlatformSettings(sentry_dsn=dsn).sentry_dsn == dsn


@pytest.mark.parametrize(
    "dsn",
    ["127.0.0.1:8204", "http://127.0.0.1:8204/1", "http://key@127.0.0.1/project", "ftp://k@h/1"],
)
def test_a_malformed_sentry_dsn_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    monkeypatch.setenv("INVENTORY_SENTRY_DSN", dsn)
    with pytest.raises(ValidationError, match="not a Sentry DSN"):
        InventoryLike()
    with pytest.raises(ValidationError, match="not a Sentry DSN"):
        PlatformSettings(sentry_dsn=dsn)
