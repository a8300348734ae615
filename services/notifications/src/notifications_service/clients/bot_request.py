"""python-telegram-bot's HTTP layer on aiohttp: the same Bot API calls for less CPU.

PTB talks to the Bot API through a :class:`telegram.request.BaseRequest`; its own
``HTTPXRequest`` goes through httpx and httpcore, which cost about twice the client CPU
of aiohttp per call and write each request's headers and body to the socket
separately. Notifications makes a Bot API call for every message (two per checkout),
so the bot uses this class instead (issue 17, docs/benchmarks.md). What goes over the
wire is PTB's: the same URL, the same form-encoded parameters (or multipart with files)
and the same status codes, which PTB's ``BaseRequest`` turns into its exceptions
(``RetryAfter``, ``BadRequest``, ``Forbidden``…) exactly as before. Transport failures
map as ``HTTPXRequest`` maps them: a timeout is :class:`telegram.error.TimedOut`, any
other client error :class:`telegram.error.NetworkError`.

With tracing on, ``opentelemetry-instrumentation-aiohttp-client`` (installed by the
kit's :func:`storefront_kit.tracing.init_tracing`) makes a ``CLIENT`` span per call,
its URL scrubbed of the bot token like every span's.
"""

from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from storefront_kit.scrubbing import scrub_text

__all__ = ["AiohttpRequest"]

#: What aiohttp's FormData sends a form without files as (UTF-8, so no charset).
_FORM = "application/x-www-form-urlencoded"


def _seconds(value: ODVInput[float], default: float) -> float | None:
    """A per-call timeout PTB passed, or the default when it passed none."""
    if isinstance(value, DefaultValue):
        return default
    return value


class AiohttpRequest(BaseRequest):
    """One aiohttp session (a keep-alive pool of ``pool_size`` connections) per request
    object; :meth:`initialize` opens it, :meth:`shutdown` closes it."""

    def __init__(self, *, pool_size: int, timeout_s: float) -> None:
        self._pool_size = pool_size
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._default_timeout: aiohttp.ClientTimeout | None = None

    @property
    def read_timeout(self) -> float:
        """The default read timeout (PTB adds it to long polls' own timeout)."""
        return self._timeout_s

    async def initialize(self) -> None:
        """Open the session (idempotent); the first call also opens it if needed."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                # PTB's User-Agent, as HTTPXRequest sends it.
                headers={"User-Agent": self.USER_AGENT},
                # Nothing from the environment: the Bot API URL is the configured one.
                trust_env=False,
                # The Bot API sets no cookies: none are parsed or sent back.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        """Close the session and its connections (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeout(
        self,
        read_timeout: ODVInput[float],
        write_timeout: ODVInput[float],
        connect_timeout: ODVInput[float],
        pool_timeout: ODVInput[float],
    ) -> aiohttp.ClientTimeout:
        """The call's aiohttp timeout (the defaults' made once)."""
        given = (read_timeout, write_timeout, connect_timeout, pool_timeout)
        defaults = all(isinstance(value, DefaultValue) for value in given)
        if defaults and self._default_timeout is not None:
            return self._default_timeout
        default = self._timeout_s
        read, write, connect, pool = (_seconds(value, default) for value in given)
        # aiohttp has no write timeout of its own: the whole call is bounded by the sum
        # (a body this small leaves in one write); ``connect`` covers the wait for a
        # pooled connection and the connection itself, ``sock_read`` each read.
        parts = (read, write, connect, pool)
        timeout = aiohttp.ClientTimeout(
            total=None if None in parts else sum(p for p in parts if p is not None),
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=read,
        )
        if defaults:
            self._default_timeout = timeout
        return timeout

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """See :meth:`telegram.request.BaseRequest.do_request`."""
        if self._session is None or self._session.closed:
            await self.initialize()
        assert self._session is not None
        timeout = self._timeout(read_timeout, write_timeout, connect_timeout, pool_timeout)
        data: Any = None
        if request_data is not None:
            files = request_data.multipart_data
            if files:
                form = aiohttp.FormData(quote_fields=False)
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mimetype) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mimetype)
                data = form
            else:
                # The body aiohttp's FormData makes of the same dict (``urlencode`` of
                # string values, UTF-8, the same Content-Type), without the multipart
                # writer FormData builds for every call (a quarter of a send's CPU).
                body = request_data.url_encoded_parameters().encode()
                data = aiohttp.BytesPayload(body, content_type=_FORM)
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # aiohttp's timeouts (asyncio.TimeoutError is this)
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            # The message may quote the URL, and with it the bot token.
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {scrub_text(str(exc))}") from exc
