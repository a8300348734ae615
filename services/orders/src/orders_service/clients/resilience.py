"""One way to call a provider: classify the HTTP outcome, retry what is transient, break.

``call`` runs one attempt through the provider's circuit breaker (when it has one) and
retries with tenacity: exponential back-off with jitter, bounded attempts, and only for
:class:`ProviderUnavailable` (timeouts, 5xx, 429, connection errors). A business 4xx is
raised at once and never counts as a breaker failure; an open breaker fails fast.

The calls go over aiohttp (a session from :func:`storefront_kit.http.create_aiohttp_session`
per target, opened and closed by the lifespan): about a third of httpx's client CPU per
call (docs/benchmarks.md, "Orders: provider calls over aiohttp"). An attempt reads the
whole answer before its connection goes back to the pool, so a failure while reading it
is the attempt's too.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from orders_service.clients.breakers import AsyncCircuitBreaker, CircuitOpenError
from orders_service.clients.errors import (
    ProviderCircuitOpen,
    ProviderRejected,
    ProviderUnavailable,
)

__all__ = [
    "ProviderClient",
    "ProviderResponse",
    "RetryPolicy",
    "check_response",
    "is_business_error",
    "resilient_call",
    "send",
]

T = TypeVar("T")

PROVIDER_CALLS = Counter(
    "orders_provider_calls_total",
    "Provider call attempts by outcome.",
    ["provider", "operation", "outcome"],
)
_TRANSIENT_4XX = frozenset({408, 425, 429})
# Answers that say the request was not processed (safe to treat as "no effect").
_NOT_PROCESSED = frozenset({408, 425, 429, 503})
# Errors raised before the request left this process: no connection (refused, unknown
# host, TLS handshake), none in time (the connect timeout covers the wait for a pooled
# one too), or a URL that cannot be requested. The session's whole-call deadline is
# longer than its connect timeout, so a timeout while connecting is always the latter;
# any other error or timeout (a read timeout, a connection lost mid-answer) may come
# after the provider acted.
_NOT_SENT = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """A provider's whole answer (read before the connection went back to the pool)."""

    status: int
    reason: str
    body: bytes

    @property
    def is_success(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The decoded JSON body (``ValueError`` when it is not JSON)."""
        return orjson.loads(self.body)


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderResponse:
    """One HTTP exchange: ``json`` sent as a JSON body, no redirect followed (a 3xx is the
    provider's answer, as with httpx)."""
    data = None
    if json is not None:
        data = orjson.dumps(json)
        headers = {**headers, **_JSON} if headers else _JSON
    async with session.request(
        method, url, data=data, params=params, headers=headers, allow_redirects=False
    ) as response:
        return ProviderResponse(response.status, response.reason or "", await response.read())


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential back-off and jitter."""

    attempts: int = 3
    initial_s: float = 0.1
    max_s: float = 2.0


def is_business_error(exc: BaseException) -> bool:
    """Breaker predicate: a business answer is not a provider failure."""
    return isinstance(exc, ProviderRejected)


def check_response(provider: str, response: ProviderResponse) -> ProviderResponse:
    """The response when 2xx; otherwise the matching :mod:`~.errors` exception."""
    if response.is_success:
        return response
    status = response.status
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    if status >= 500 or status in _TRANSIENT_4XX:
        raise ProviderUnavailable(
            provider,
            f"HTTP {status} {body.get('code', '')}".strip(),
            uncertain=status not in _NOT_PROCESSED,
        )
    raise ProviderRejected(
        provider,
        status=status,
        code=str(body.get("code") or f"http_{status}"),
        detail=str(body.get("detail") or response.reason),
        body=body,
    )


async def resilient_call(
    attempt: Callable[[], Awaitable[ProviderResponse]],
    *,
    provider: str,
    operation: str,
    policy: RetryPolicy,
    breaker: AsyncCircuitBreaker | None = None,
) -> ProviderResponse:
    """Send ``attempt()`` with retries (and the breaker); a 2xx response or an error."""

    async def once() -> ProviderResponse:
        try:
            response = await attempt()
        except (aiohttp.ClientError, TimeoutError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else "connection error"
            raise ProviderUnavailable(
                provider,
                f"{kind} ({type(exc).__name__})",
                uncertain=not isinstance(exc, _NOT_SENT),
            ) from exc
        return check_response(provider, response)

    async def guarded() -> ProviderResponse:
        if breaker is None:
            return await once()
        return await breaker.call(once)

    uncertain = False  # did any attempt possibly have an effect?
    try:
        async for retry in AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            # initial·2^n plus up to one more ``initial`` of jitter, capped at ``max_s``.
            wait=wait_exponential_jitter(
                multiplier=policy.initial_s, jitter=policy.initial_s, max=policy.max_s
            ),
            retry=retry_if_exception_type(ProviderUnavailable),
            reraise=True,
        ):
            with retry:
                try:
                    response = await guarded()
                except ProviderUnavailable as exc:
                    PROVIDER_CALLS.labels(provider, operation, "unavailable").inc()
                    uncertain = uncertain or exc.uncertain
                    exc.uncertain = uncertain
                    raise
                except ProviderRejected:
                    PROVIDER_CALLS.labels(provider, operation, "rejected").inc()
                    raise
                PROVIDER_CALLS.labels(provider, operation, "ok").inc()
                return response
    except CircuitOpenError as exc:
        PROVIDER_CALLS.labels(provider, operation, "circuit_open").inc()
        raise ProviderCircuitOpen(provider, uncertain=uncertain) from exc
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


class ProviderClient:
    """An HTTP adapter whose every call goes through ``resilient_call`` (breaker, retries)."""

    #: The provider's name in metrics, logs and errors.
    provider: str

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        policy: RetryPolicy,
        breaker: AsyncCircuitBreaker,
    ) -> None:
        self._http = http
        # Paths are appended to the base URL's own path, as httpx's ``base_url`` does.
        self._base_url = base_url.rstrip("/")
        self._policy = policy
        self._breaker = breaker

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer; mutating calls pass the caller's idempotency ``key``."""
        headers = {"Idempotency-Key": key} if key else None
        url = self._base_url + path
        response = await resilient_call(
            lambda: send(self._http, method, url, json=json, params=params, headers=headers),
            provider=self.provider,
            operation=operation,
            policy=self._policy,
            breaker=self._breaker,
        )
        return response.json()
