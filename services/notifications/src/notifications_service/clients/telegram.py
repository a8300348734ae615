"""The bot, on python-telegram-bot: sending with retries, and the webhook registration.

Sends are retried a bounded number of times: a 429 waits exactly the ``retry_after``
Telegram asks for (up to a limit), timeouts, network errors and 5xx back off
exponentially with jitter. 400 (our text is wrong) and 403 (the user blocked the bot)
are final. Errors are logged by type and status, never with message text (an OTP).

A send is PTB's ``sendMessage`` call through :meth:`telegram.Bot.do_api_request`, which
sends the parameters ``Bot.send_message`` would (the same request on the wire, the same
exceptions) but hands back Telegram's answer as it came instead of building a
:class:`telegram.Message` of it: callers need only its ``message_id`` (issue 17).
"""

import asyncio
import contextlib
import warnings
from datetime import timedelta
from typing import Any

from prometheus_client import Counter
from telegram import Bot, ReplyKeyboardMarkup, ReplyKeyboardRemove
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    EndPointNotFound,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBUserWarning
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from notifications_service.clients.bot_request import AiohttpRequest
from notifications_service.settings import NotificationsSettings
from storefront_kit.logging import get_logger

__all__ = ["SEND_MESSAGE_HINT", "TELEGRAM_CALLS", "TelegramBot", "retry_after_s"]

logger = get_logger(__name__)

TELEGRAM_CALLS = Counter(
    "notifications_telegram_calls_total", "Bot API sendMessage calls by outcome.", ["outcome"]
)


#: Every text is sent as HTML: what ``domain/templates.py`` writes and escapes for.
PARSE_MODE = ParseMode.HTML

#: What ``do_api_request`` warns of for a method PTB has (``send_message``), on every
#: send: that method would parse the answer into a ``Message``, the cost avoided here.
SEND_MESSAGE_HINT = r"Please use 'Bot\.sendMessage' instead of 'Bot\.do_api_request"
warnings.filterwarnings("ignore", message=SEND_MESSAGE_HINT, category=PTBUserWarning)


def retry_after_s(exc: RetryAfter) -> float:
    """Seconds Telegram asked us to wait (PTB gives an int or, opted in, a timedelta)."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, RetryAfter):
        return "flood"
    return type(exc).__name__.lower()


class TelegramBot:
    """One ``telegram.Bot`` for the process, plus the policies around it."""

    def __init__(self, settings: NotificationsSettings) -> None:
        timeout = settings.telegram_timeout_s
        # PTB over aiohttp rather than its HTTPXRequest: the same Bot API calls for about
        # half the client CPU (clients/bot_request.py, issue 17).
        request = AiohttpRequest(pool_size=settings.telegram_pool_size, timeout_s=timeout)
        self._requests = (request, AiohttpRequest(pool_size=1, timeout_s=timeout))
        self.bot = Bot(
            settings.telegram_bot_token.get_secret_value(),
            base_url=f"{settings.telegram_api_url}/bot",
            request=self._requests[0],
            get_updates_request=self._requests[1],
        )
        self._settings = settings
        self._backoff = wait_exponential_jitter(
            multiplier=settings.telegram_backoff_s,
            max=settings.telegram_backoff_max_s,
            jitter=settings.telegram_backoff_s,
        )
        self.ready = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------

    async def _set_up_once(self) -> None:
        await self.bot.initialize()
        url = self._settings.telegram_webhook_url
        if url:
            await self.bot.set_webhook(
                url=url,
                secret_token=self._settings.telegram_webhook_secret.get_secret_value(),
                allowed_updates=["message"],
            )
            logger.info("telegram_webhook_registered", url=url)
        self.ready.set()

    async def set_up(self, stop: asyncio.Event) -> None:
        """getMe and setWebhook until both worked (or ``stop``); failures only cost a retry."""
        delay = self._settings.telegram_webhook_retry_s
        while not stop.is_set():
            try:
                await self._set_up_once()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Only the type: an InvalidToken message quotes the token.
                logger.warning("telegram_setup_failed", error=type(exc).__name__, retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 60.0)

    async def aclose(self) -> None:
        """Close the bot's HTTP connections."""
        await self.bot.shutdown()
        # shutdown() skips a bot whose getMe never succeeded; close its clients anyway.
        for request in self._requests:
            await request.shutdown()

    # --- sending ------------------------------------------------------------------------

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, RetryAfter):
            return retry_after_s(exc) <= self._settings.telegram_retry_after_max_s
        # BadRequest is a NetworkError in PTB, but retrying the same text cannot help.
        return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryAfter):
            return retry_after_s(exc)
        return float(self._backoff(state))

    async def send(
        self,
        chat_id: int,
        text: str,
        *,
        attempts: int | None = None,
        deadline_s: float | None = None,
        reply_markup: ReplyKeyboardMarkup | ReplyKeyboardRemove | None = None,
    ) -> int:
        """Send ``text`` (HTML) to ``chat_id``, retrying 429s and transient errors; the
        sent message's id.

        Raises the last :class:`telegram.error.TelegramError` once attempts (or the
        deadline) are used up, or at once for a final one (400, 403).
        """
        # The parameters, in the order, that send_message sends (its None ones dropped).
        parameters: dict[str, Any] = {"chat_id": chat_id, "text": text, "parse_mode": PARSE_MODE}
        if reply_markup is not None:
            parameters["reply_markup"] = reply_markup
        stop: stop_base = stop_after_attempt(attempts or self._settings.telegram_send_attempts)
        if deadline_s is not None:
            stop = stop | stop_after_delay(deadline_s)
        retrying = AsyncRetrying(
            stop=stop,
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    message = await self._send_message(parameters)
                except TelegramError as exc:
                    TELEGRAM_CALLS.labels(_outcome(exc)).inc()
                    logger.info(
                        "telegram_send_failed",
                        chat_id=chat_id,
                        attempt=attempt.retry_state.attempt_number,
                        error=type(exc).__name__,
                        retry_after_s=retry_after_s(exc) if isinstance(exc, RetryAfter) else None,
                    )
                    raise
                TELEGRAM_CALLS.labels("ok").inc()
                return int(message["message_id"])
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _send_message(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """One ``sendMessage`` call; Telegram's answer (the message) as a dict."""
        try:
            result: dict[str, Any] = await self.bot.do_api_request(
                "sendMessage", api_kwargs=parameters, return_type=None
            )
        except EndPointNotFound as exc:
            # do_api_request's name for a rejected token (401/404) once the bot is
            # initialised; send_message raised PTB's own InvalidToken, which this is.
            if isinstance(exc.__cause__, TelegramError):
                raise exc.__cause__ from None
            raise
        return result
