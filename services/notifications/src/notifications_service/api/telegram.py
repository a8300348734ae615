"""``/api/v1/telegram/webhook``: updates from Telegram, answered at once, handled after."""

import hmac
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from telegram import Update

from notifications_service.deps import AuthClientDep, RedisDep, SettingsDep, TasksDep, TelegramDep
from notifications_service.errors import InvalidUpdate, WebhookSecretInvalid, WebhookSecretMissing
from notifications_service.schemas import WebhookAck
from notifications_service.service.bot import accept_update
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/telegram", tags=["telegram"])

#: Telegram updates are small; anything bigger is not one.
MAX_UPDATE_BYTES = 256 * 1024


def _check_secret(presented: str | None, expected: str) -> None:
    if presented is None:
        raise WebhookSecretMissing("The X-Telegram-Bot-Api-Secret-Token header is required.")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise WebhookSecretInvalid("The webhook secret does not match.")


def _parse(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_UPDATE_BYTES:
        raise InvalidUpdate("The update is too large.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidUpdate("The body is not JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise InvalidUpdate("The body is not a Telegram Update (no integer update_id).")
    return data


@router.post(
    "/webhook",
    responses=responses(WebhookSecretMissing, WebhookSecretInvalid, InvalidUpdate),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "description": "A Telegram Update."},
                    "example": {
                        "update_id": 1,
                        "message": {
                            "message_id": 1,
                            "date": 1760000000,
                            "chat": {"id": 100200300, "type": "private"},
                            "text": "/start 3q2-7w8PZbYcUAm4nU6Mpg",
                        },
                    },
                }
            },
        }
    },
)
async def webhook(
    request: Request,
    settings: SettingsDep,
    telegram: TelegramDep,
    auth: AuthClientDep,
    redis: RedisDep,
    tasks: TasksDep,
    secret: Annotated[
        str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token", include_in_schema=False)
    ] = None,
) -> WebhookAck:
    """Take an update from Telegram; it is handled in the background (200 at once)."""
    _check_secret(secret, settings.telegram_webhook_secret.get_secret_value())
    data = _parse(await request.body())
    try:
        update = Update.de_json(data, telegram.bot)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidUpdate(f"Not a Telegram Update: {type(exc).__name__}.") from None
    await accept_update(
        update=update,
        redis=redis,
        tasks=tasks,
        telegram=telegram,
        auth=auth,
        dedupe_s=settings.telegram_update_dedupe_s,
    )
    return WebhookAck()
