"""What a provider call can end in, as the saga needs to tell them apart.

Exception tree::

    ProviderError
    ├── ProviderRejected      a 4xx business answer (decline, out of stock): never retried,
    │                         never counted by a breaker; the call had no effect
    ├── ProviderUnavailable   timeouts, 5xx, connection errors, after the bounded retries;
    │                         ``uncertain`` when an attempt may have had an effect (a read
    │                         timeout, a 500/502/504), not for 503/429 or a refused connection
    └── ProviderCircuitOpen   the provider's breaker is open: this attempt was not made
                              (``uncertain`` when an earlier attempt may have had an effect)
"""

from typing import Any

__all__ = ["ProviderCircuitOpen", "ProviderError", "ProviderRejected", "ProviderUnavailable"]


class ProviderError(Exception):
    """Base of every provider failure."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message


class ProviderRejected(ProviderError):
    """The provider understood and said no (4xx)."""

    def __init__(
        self, provider: str, *, status: int, code: str, detail: str, body: dict[str, Any]
    ) -> None:
        super().__init__(provider, f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body


class ProviderUnavailable(ProviderError):
    """A transient failure (retried until the attempts ran out)."""

    def __init__(self, provider: str, message: str, *, uncertain: bool) -> None:
        super().__init__(provider, message)
        self.uncertain = uncertain


class ProviderCircuitOpen(ProviderError):
    """The breaker refused the call."""

    def __init__(self, provider: str, *, uncertain: bool) -> None:
        super().__init__(provider, "circuit open")
        self.uncertain = uncertain
