"""Settings refuse unsafe configurations."""

import pytest
from pydantic import SecretStr, ValidationError

from storefront_kit.settings import DatabaseSettingsMixin, PlatformSettings


def test_production_refuses_placeholder_service_key() -> None:
    with pytest.raises(ValidationError, match="STOREFRONT_SERVICE_TOKEN_KEY"):
        PlatformSettings(environment="production", service_token_key=SecretStr("changeme"))


def test_production_accepts_a_real_key() -> None:
    settings = PlatformSettings(environment="production", service_token_key=SecretStr("k" * 40))
    assert settings.environment == "production"


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
