"""Fault injection shared by the three stand-ins.

A test (or a developer through ``POST /sandbox/<name>/faults``) sets a mode, a rate and
optionally the operations it hits; every call of a matching operation then asks the
injector what to do. The decision and the bookkeeping happen without an ``await`` in
between, so concurrent requests on the event loop see one consistent count.

Modes are the app's own words (``flood`` for Telegram, ``decline`` for payments...);
the injector only knows that ``ok`` means "no fault".
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from storefront_sandbox.problems import ProblemError, problem_responses

__all__ = [
    "OK",
    "FaultConfig",
    "FaultInjector",
    "ProviderFaultConfig",
    "include_fault_routes",
    "raise_provider_fault",
    "stall",
]

OK = "ok"


class FaultConfig(BaseModel):
    """Base of each app's ``POST /faults`` body; apps narrow ``mode`` and ``operations``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: str = Field(description="Which fault to inject; 'ok' turns injection off.")
    rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of matching calls that fail (drawn per call)."
    )
    latency_ms: int = Field(
        default=0, ge=0, le=600_000, description="Delay added to every matching call, any mode."
    )
    operations: Sequence[str] | None = Field(
        default=None, description="Operations the fault applies to; omitted means the default set."
    )
    times: int | None = Field(
        default=None,
        ge=1,
        description="Inject only the next N faults, then behave as 'ok' (retry tests).",
    )


class FaultInjector:
    """Holds the current fault configuration of one sandbox and draws per call."""

    def __init__(self, *, default_operations: Collection[str]) -> None:
        self._default_operations = frozenset(default_operations)
        # A seeded generator is not needed: tests that need certainty use rate 0 or 1.
        self._random = random.Random()  # noqa: S311 - fault sampling, not security
        self._config: dict[str, Any] = {}
        self._remaining: int | None = None
        self._injected = 0
        self.reset()

    def reset(self) -> None:
        """Back to no faults at all."""
        self._config = {"mode": OK, "rate": 1.0, "latency_ms": 0, "operations": None, "times": None}
        self._remaining = None
        self._injected = 0

    def configure(self, config: FaultConfig) -> dict[str, Any]:
        """Replace the configuration (a new POST starts the counters afresh)."""
        self._config = config.model_dump()
        self._remaining = config.times
        self._injected = 0
        return self.describe()

    def describe(self) -> dict[str, Any]:
        """What ``GET /faults`` shows: the configuration plus what it has done so far."""
        operations = self._config.get("operations")
        return {
            **self._config,
            "operations": sorted(operations or self._default_operations),
            "remaining": self._remaining,
            "injected": self._injected,
        }

    def option(self, name: str, default: Any = None) -> Any:
        """An app-specific field of the current configuration (``retry_after``...)."""
        return self._config.get(name, default)

    def _applies_to(self, operation: str) -> bool:
        operations = self._config.get("operations")
        return operation in (operations or self._default_operations)

    async def draw(self, operation: str) -> str:
        """The mode to apply to this call (``'ok'`` when none), after any configured latency."""
        if not self._applies_to(operation):
            return OK
        mode = str(self._config["mode"])
        latency_s = float(self._config.get("latency_ms") or 0) / 1000
        if mode != OK and self._remaining != 0 and self._random.random() < self._config["rate"]:
            self._injected += 1
            if self._remaining is not None:
                self._remaining -= 1
        else:
            mode = OK
        if latency_s:
            await asyncio.sleep(latency_s)
        return mode


async def stall(request: Request, seconds: float, *, poll_s: float = 0.1) -> bool:
    """Sleep like a hung provider; return early (``False``) once the client gave up.

    Returning early matters for idempotency: the per-key lock is released as soon as the
    caller times out, so its retry with the same key is not stuck behind a ghost request.
    """
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            return False
        await asyncio.sleep(min(poll_s, left))
    return True


class ProviderFaultConfig(FaultConfig):
    """Fault body of the payment and shipping providers (shared ``timeout`` behaviour)."""

    then: Literal["fail", "apply"] = Field(
        default="fail",
        description=(
            "After a 'timeout' stall: 'fail' answers 504 and changes nothing; 'apply' performs "
            "the operation anyway (the provider did it, the client never heard)."
        ),
    )


async def raise_provider_fault(
    injector: FaultInjector,
    operation: str,
    request: Request,
    *,
    timeout_s: float,
    decline: ProblemError,
) -> None:
    """Raise the fault drawn for this call; return when the operation should go ahead.

    ``error`` is a 503 and ``timeout`` a stall then a 504: both are 5xx, so they are not
    stored under the idempotency key and a retry with the same key runs again.
    """
    mode = await injector.draw(operation)
    if mode in ("decline", "reject"):
        raise decline
    if mode == "error":
        raise ProblemError(
            503, "provider_unavailable", f"Injected fault: the provider failed to {operation}."
        )
    if mode == "timeout":
        await stall(request, timeout_s)
        if injector.option("then") != "apply":
            raise ProblemError(
                504,
                "provider_timeout",
                f"Injected fault: the provider did not {operation} in time.",
            )


def include_fault_routes(
    app: FastAPI,
    faults: FaultInjector,
    config: type[FaultConfig],
    *,
    effect: str,
    forgets: str,
    forget: Callable[[], Awaitable[None]],
) -> None:
    """A stand-in's ``POST``/``GET /faults`` and ``POST /reset`` (tag ``sandbox``).

    ``config`` is the app's body of ``POST /faults``, ``effect`` what its faults do
    ("the provider decline, ..."), and ``forget`` clears the app's own state on a reset
    (``forgets`` says what it clears), before the faults are reset too.
    """

    async def set_faults(body: FaultConfig) -> dict[str, Any]:
        return faults.configure(body)

    set_faults.__annotations__["body"] = config
    set_faults.__doc__ = f"Make {effect} from now on."
    app.post("/faults", responses=problem_responses(422), tags=["sandbox"])(set_faults)

    @app.get("/faults", tags=["sandbox"])
    async def get_faults() -> dict[str, Any]:
        """The current fault configuration and how many faults it injected."""
        return faults.describe()

    async def reset() -> Response:
        await forget()
        faults.reset()
        return Response(status_code=204)

    reset.__doc__ = f"Forget {forgets} and faults (tests)."
    app.post("/reset", status_code=204, tags=["sandbox"])(reset)
