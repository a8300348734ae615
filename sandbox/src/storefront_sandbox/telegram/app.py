"""The Telegram stand-in's app: the Bot API route and the developer endpoints."""

import re
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Any, Literal

import httpx
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from storefront_sandbox.faults import OK, FaultConfig, FaultInjector, include_fault_routes
from storefront_sandbox.problems import ProblemError, problem_responses
from storefront_sandbox.settings import SandboxSettings
from storefront_sandbox.telegram.errors import BotApiError
from storefront_sandbox.telegram.methods import BY_LOWER, MAX_TEXT, METHODS, Call, Described
from storefront_sandbox.telegram.params import read_params
from storefront_sandbox.telegram.state import NO_WEBHOOK_INFO, TelegramState, now
from storefront_sandbox.web import new_app

__all__ = ["SECRET_HEADER", "create_app"]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
_TOKEN = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{1,100}$")
_START_PAYLOAD = r"^[A-Za-z0-9_-]{0,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _FromUser(_Strict):
    chat_id: int = Field(gt=0, description="The user's id, which is their private chat's id.")
    first_name: str = Field(default="Sandbox", min_length=1, max_length=64)
    last_name: str | None = Field(default=None, max_length=64)
    username: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{5,32}$")
    language_code: str | None = Field(default="en", max_length=10)


class StartRequest(_FromUser):
    """``POST /start``: a user pressing Start on ``t.me/<bot>?start=<payload>``."""

    payload: str = Field(
        default="",
        pattern=_START_PAYLOAD,
        description="The deep-link parameter: up to 64 of A-Z a-z 0-9 _ - (Telegram's rule).",
    )


class SendRequest(_FromUser):
    """``POST /send``: a user typing ``text`` to the bot."""

    text: str = Field(min_length=1, max_length=MAX_TEXT)


class ContactRequest(_FromUser):
    """``POST /contact``: a user sharing a contact card in reply to the bot.

    Left out, ``user_id`` is the sender's own (``chat_id``): what the ``request_contact``
    button sends. Another id is someone else's card; ``null`` is a card of no Telegram user.
    """

    phone_number: str = Field(
        min_length=1,
        max_length=64,
        description="As Telegram sends it: often digits without the leading +.",
    )
    user_id: int | None = Field(default=None, description="Whose card it is (default: chat_id).")
    contact_first_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The card's name (default: first_name).",
    )

    def card_user_id(self) -> int | None:
        """The card's ``user_id``: the sender's own unless one (or null) was given."""
        return self.user_id if "user_id" in self.model_fields_set else self.chat_id


class CallbackRequest(_FromUser):
    """``POST /callback``: a user pressing an inline button under one of the bot's messages."""

    message_id: int = Field(gt=0)
    data: str = Field(min_length=1, max_length=64)


class Delivery(BaseModel):
    """What happened to an update posted to the webhook."""

    delivered: bool
    webhook_status: int
    update_id: int


class TelegramFaults(FaultConfig):
    """``POST /faults`` body of the Telegram stand-in."""

    mode: Literal["ok", "flood", "error", "blocked"] = Field(
        description="flood: 429 with retry_after; error: 5xx; blocked: 403 'bot was blocked'."
    )
    operations: list[str] | None = Field(
        default=None, description="Bot API methods it hits; default ['sendMessage']."
    )
    retry_after: int = Field(default=5, ge=1, le=3600)
    error_status: Literal[500, 502, 503, 504] = 500

    @field_validator("operations")
    @classmethod
    def _known_methods(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [m for m in value if m.lower() not in BY_LOWER]
        if unknown:
            raise ValueError(f"unknown Bot API methods: {unknown}")
        return [BY_LOWER[m.lower()] for m in value]


def _fault_error(mode: str, faults: FaultInjector) -> BotApiError:
    if mode == "flood":
        retry_after = int(faults.option("retry_after", 5))
        return BotApiError(
            429,
            f"Too Many Requests: retry after {retry_after}",
            parameters={"retry_after": retry_after},
        )
    if mode == "blocked":
        return BotApiError(403, "Forbidden: bot was blocked by the user")
    status = int(faults.option("error_status", 500))
    return BotApiError(status, f"{HTTPStatus(status).phrase}: injected fault")


def create_app(
    settings: SandboxSettings | None = None,
    *,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The Telegram stand-in (``--factory`` entry point).

    ``webhook_transport`` lets a test deliver updates to an in-process ASGI app.
    """
    settings = settings or SandboxSettings()
    state = TelegramState()
    faults = FaultInjector(default_operations=("sendMessage",))
    app = new_app(
        title="Telegram Bot API sandbox",
        description="Stand-in Bot API for python-telegram-bot, with developer endpoints.",
    )

    async def call_method(token: str, name: str, params: Mapping[str, Any]) -> JSONResponse:
        if not _TOKEN.match(token) or (
            settings.telegram_token is not None and token != settings.telegram_token
        ):
            return BotApiError(401, "Unauthorized").response()
        method = BY_LOWER.get(name.lower())
        if method is None:
            return BotApiError(404, "Not Found: method not found").response()
        mode = await faults.draw(method)
        if mode != OK:
            return _fault_error(mode, faults).response()
        try:
            async with state.lock:
                result = METHODS[method](Call(state, settings, token, params))
        except BotApiError as exc:
            return exc.response()
        if isinstance(result, Described):
            return JSONResponse(
                {"ok": True, "result": result.result, "description": result.description}
            )
        return JSONResponse({"ok": True, "result": result})

    @app.api_route("/bot{token}/{method}", methods=["GET", "POST"], tags=["bot api"])
    async def bot_api(token: str, method: str, request: Request) -> Response:
        """A Bot API method call, answered as Telegram answers it."""
        try:
            params = await read_params(request)
        except BotApiError as exc:
            return exc.response()
        return await call_method(token, method, params)

    async def deliver(update: dict[str, Any], kind: str) -> Delivery:
        """POST one update to the webhook, as Telegram does; never under the state lock."""
        webhook = state.webhook
        if webhook is None:
            raise ProblemError(
                409,
                "webhook_not_set",
                "No webhook is registered: the bot has to call setWebhook first.",
            )
        if webhook.allowed_updates and kind not in webhook.allowed_updates:
            raise ProblemError(
                409,
                "update_type_not_allowed",
                f"The webhook's allowed_updates {webhook.allowed_updates} exclude {kind!r}.",
            )
        headers = {SECRET_HEADER: webhook.secret_token} if webhook.secret_token else {}
        try:
            async with httpx.AsyncClient(
                transport=webhook_transport, timeout=settings.webhook_timeout_s
            ) as client:
                response = await client.post(webhook.url, json=update, headers=headers)
        except httpx.HTTPError as exc:
            webhook.last_error_date = now()
            webhook.last_error_message = f"Connection failed: {type(exc).__name__}"
            state.deliveries.append({"update": update, "status": None, "error": repr(exc)})
            raise ProblemError(
                502,
                "webhook_unreachable",
                f"Posting the update to {webhook.url} failed: {exc!r}",
                extra={"update_id": update["update_id"]},
            ) from None
        delivered = response.is_success
        state.deliveries.append({"update": update, "status": response.status_code})
        if not delivered:
            webhook.last_error_date = now()
            webhook.last_error_message = (
                f"Wrong response from the webhook: {response.status_code} {response.reason_phrase}"
            )
        else:
            await _answer_in_response(response, webhook.token)
        return Delivery(
            delivered=delivered, webhook_status=response.status_code, update_id=update["update_id"]
        )

    async def _answer_in_response(response: httpx.Response, token: str) -> None:
        # A webhook may answer with a method call in its body (Bot API "reply to webhook").
        if "application/json" not in response.headers.get("content-type", ""):
            return
        try:
            body = response.json()
        except ValueError:
            return
        if isinstance(body, dict) and isinstance(body.get("method"), str):
            params = {k: v for k, v in body.items() if k != "method"}
            await call_method(token, body["method"], params)

    def user_of(body: _FromUser) -> dict[str, Any]:
        """The User object of the person acting; their chat remembers their names."""
        user: dict[str, Any] = {"id": body.chat_id, "is_bot": False, "first_name": body.first_name}
        chat: dict[str, Any] = {"first_name": body.first_name}
        for name in ("last_name", "username"):
            if (value := getattr(body, name)) is not None:
                user[name] = chat[name] = value
        if body.language_code:
            user["language_code"] = body.language_code
        state.chats[body.chat_id] = chat
        return user

    def user_message(
        body: _FromUser, text: str | None, entities: list[dict[str, Any]]
    ) -> dict[str, Any]:
        user = user_of(body)
        message: dict[str, Any] = {
            "message_id": state.next_message_id(body.chat_id),
            "from": user,
            "chat": state.chat(body.chat_id),
            "date": now(),
        }
        if text is not None:
            message["text"] = text
        if entities:
            message["entities"] = entities
        return message

    def command_entities(text: str) -> list[dict[str, Any]]:
        if not text.startswith("/"):
            return []
        command = text.split(maxsplit=1)[0]
        return [
            {"type": "bot_command", "offset": 0, "length": len(command.encode("utf-16-le")) // 2}
        ]

    _dev_errors = problem_responses(409, 422, 502)

    @app.post("/start", response_model=Delivery, responses=_dev_errors, tags=["sandbox"])
    async def start(body: StartRequest) -> Delivery:
        """Play a user pressing Start on the deep link: the webhook gets ``/start <payload>``."""
        text = f"/start {body.payload}" if body.payload else "/start"
        async with state.lock:
            message = user_message(body, text, command_entities(text))
            update = {"update_id": state.next_update_id(), "message": message}
        return await deliver(update, "message")

    @app.post("/send", response_model=Delivery, responses=_dev_errors, tags=["sandbox"])
    async def send(body: SendRequest) -> Delivery:
        """Play a user typing ``text`` to the bot."""
        async with state.lock:
            message = user_message(body, body.text, command_entities(body.text))
            update = {"update_id": state.next_update_id(), "message": message}
        return await deliver(update, "message")

    @app.post("/contact", response_model=Delivery, responses=_dev_errors, tags=["sandbox"])
    async def contact(body: ContactRequest) -> Delivery:
        """Play a user sharing a contact: their own (the request_contact button) or a card."""
        card: dict[str, Any] = {
            "phone_number": body.phone_number,
            "first_name": body.contact_first_name or body.first_name,
        }
        if (card_user_id := body.card_user_id()) is not None:
            card["user_id"] = card_user_id
        async with state.lock:
            message = user_message(body, None, [])
            message["contact"] = card
            update = {"update_id": state.next_update_id(), "message": message}
        return await deliver(update, "message")

    @app.post(
        "/callback",
        response_model=Delivery,
        responses=problem_responses(404, 409, 422, 502),
        tags=["sandbox"],
    )
    async def callback(body: CallbackRequest) -> Delivery:
        """Play a user pressing an inline button; the bot must answerCallbackQuery."""
        async with state.lock:
            sent = state.messages.get(body.chat_id, {}).get(body.message_id)
            if sent is None:
                raise ProblemError(
                    404, "message_not_found", "The bot sent no such message to that chat."
                )
            webhook = state.webhook
            token = webhook.token if webhook else "0:sandbox"
            query_id = str(uuid.uuid4().int % 10**18)
            state.callback_queries[query_id] = False
            user = user_of(body)
            message = Call(state, settings, token, {}).message(sent)
            update = {
                "update_id": state.next_update_id(),
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "message": message,
                    "chat_instance": str(body.chat_id),
                    "data": body.data,
                },
            }
        return await deliver(update, "callback_query")

    @app.get("/messages", responses=problem_responses(422), tags=["sandbox"])
    async def messages(chat_id: Annotated[int, Query()]) -> list[dict[str, Any]]:
        """What the bot sent to that chat, oldest first (deleted messages are gone)."""
        return [m.listing() for m in state.messages.get(chat_id, {}).values()]

    @app.delete("/messages", tags=["sandbox"])
    async def clear_messages(
        chat_id: Annotated[int | None, Query()] = None,
    ) -> dict[str, int]:
        """Forget the bot's messages (of one chat, or all) so a test starts clean."""
        async with state.lock:
            chats = [chat_id] if chat_id is not None else list(state.messages)
            deleted = sum(len(state.messages.pop(c, {})) for c in chats)
        return {"deleted": deleted}

    @app.get("/webhook", tags=["sandbox"])
    async def webhook_info() -> dict[str, Any]:
        """The registered webhook (``getWebhookInfo``), and whether it checks a secret."""
        webhook = state.webhook
        if webhook is None:
            return {**NO_WEBHOOK_INFO, "has_secret_token": False}
        return {**webhook.info(), "has_secret_token": webhook.secret_token is not None}

    @app.get("/updates", tags=["sandbox"])
    async def updates() -> list[dict[str, Any]]:
        """Updates posted to the webhook, oldest first, with the status it answered."""
        return list(state.deliveries)

    async def forget() -> None:
        async with state.lock:
            state.clear()

    include_fault_routes(
        app,
        faults,
        TelegramFaults,
        effect="Bot API calls flood (429), fail (5xx) or be blocked (403)",
        forgets="messages, webhook, commands, updates",
        forget=forget,
    )

    return app
