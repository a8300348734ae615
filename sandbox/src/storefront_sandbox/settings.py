"""Settings of the sandboxes, read from ``SANDBOX_*`` environment variables.

One settings class serves the three stand-ins: each process reads only the fields it
uses, and a test passes its own instance to ``create_app`` instead of touching the
environment.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SandboxSettings"]


class SandboxSettings(BaseSettings):
    """Tunables of the stand-ins; every field has a default that suits ``make run``."""

    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="ignore")

    timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a 'timeout' fault stalls before answering: longer than clients wait.",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="How long the Telegram stand-in waits for the webhook."
    )
    telegram_token: str | None = Field(
        default=None,
        description="When set, the only bot token accepted (else any well-formed token).",
    )
    telegram_bot_username: str = Field(
        default="storefront_sandbox_bot", description="The bot's @username that getMe reports."
    )
    telegram_bot_first_name: str = Field(
        default="Storefront", description="The bot's display name that getMe reports."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach this sandbox at (labels); else the request's own.",
    )
