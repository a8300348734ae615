"""Reading Bot API parameters the way Telegram does.

Parameters come as a query string, JSON, urlencoded or multipart form, as PTB and other
clients send them. Form values are strings, so the models are lax (``"42"`` is a chat
id) and ignore unknown fields (Telegram ignores them, and PTB sends some we never use).
"""

import email.policy
import json
from collections.abc import Mapping
from email.parser import BytesParser
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from storefront_sandbox.telegram.errors import bad_request

__all__ = [
    "AnswerCallbackQuery",
    "BotCommand",
    "CommandScope",
    "DeleteMessage",
    "EditMessageReplyMarkup",
    "EditMessageText",
    "EditParams",
    "Params",
    "SendChatAction",
    "SendMessage",
    "SetMyCommands",
    "SetWebhook",
    "parse_params",
    "read_params",
]

# Form-encoded parameters arrive as strings; these ones hold JSON (Bot API convention).
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "commands",
        "scope",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
    }
)
_MISSING = {
    "chat_id": "chat_id is empty",
    "text": "message text is empty",
    "message_id": "message identifier is not specified",
    "callback_query_id": "query_id is empty",
    "commands": "commands are empty",
    "action": "action is empty",
}


class Params(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _ChatParams(Params):
    chat_id: int


class SendMessage(_ChatParams):
    """``sendMessage``."""

    text: str
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None


class EditParams(Params):
    """What every ``editMessage*`` method takes: the message (by chat and message id, or
    an inline message's id) and the keyboard it is to have."""

    chat_id: int | None = None
    message_id: int | None = None
    inline_message_id: str | None = None
    reply_markup: dict[str, Any] | None = None


class EditMessageText(EditParams):
    """``editMessageText``."""

    text: str
    parse_mode: str | None = None


class EditMessageReplyMarkup(EditParams):
    """``editMessageReplyMarkup``."""


class DeleteMessage(_ChatParams):
    """``deleteMessage``."""

    message_id: int


class SetWebhook(Params):
    """``setWebhook``."""

    url: str
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    max_connections: int = Field(default=40, ge=1, le=100)
    ip_address: str | None = None
    drop_pending_updates: bool = False


class BotCommand(Params):
    """One entry of ``setMyCommands``."""

    command: str
    description: str


class SetMyCommands(Params):
    """``setMyCommands``."""

    commands: list[BotCommand] = Field(max_length=100)
    scope: dict[str, Any] | None = None
    language_code: str = ""


class CommandScope(Params):
    """``getMyCommands`` / ``deleteMyCommands``."""

    scope: dict[str, Any] | None = None
    language_code: str = ""


class AnswerCallbackQuery(Params):
    """``answerCallbackQuery``."""

    callback_query_id: str
    text: str | None = Field(default=None, max_length=200)
    show_alert: bool = False
    url: str | None = None
    cache_time: int = 0

    @field_validator("callback_query_id", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class SendChatAction(_ChatParams):
    """``sendChatAction``."""

    action: str


_P = TypeVar("_P", bound=Params)


def parse_params(model: type[_P], params: Mapping[str, Any]) -> _P:
    """Validate Bot API parameters, failing with Telegram's wording."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "parameters"
        if error["type"] == "missing":
            raise bad_request(_MISSING.get(name, f"parameter {name} is required")) from None
        if name == "chat_id":
            raise bad_request("chat not found") from None
        raise bad_request(f"wrong parameter {name}: {error['msg']}") from None


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    """Fields of a multipart/form-data body, parsed with the standard library.

    (Starlette's form parser needs python-multipart, which the repo does not pin.)
    Files, such as a webhook certificate, are accepted and reduced to their file name.
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise bad_request("can't parse multipart/form-data body")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_filename()
        if filename is not None:
            fields[name] = filename
            continue
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        fields[name] = raw.decode(part.get_content_charset() or "utf-8")
    return fields


async def read_params(request: Request) -> dict[str, Any]:
    """Query string, then the body in whichever encoding the client chose."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("JSON object expected")
            params.update(body)
    elif content_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    elif content_type == "multipart/form-data":
        params.update(_multipart_fields(request.headers["content-type"], await request.body()))
    # JSON-valued parameters may also arrive JSON-serialized inside a JSON body.
    for name in _JSON_PARAMS & params.keys():
        if isinstance(params[name], str):
            try:
                params[name] = json.loads(params[name])
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
    return params
