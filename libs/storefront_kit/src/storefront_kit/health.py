"""Liveness and readiness: readiness really asks each dependency and names what is down."""

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from storefront_kit.breaker import Breaker
from storefront_kit.problems import problem_response

__all__ = [
    "HealthCheck",
    "elasticsearch_check",
    "health_router",
    "postgres_check",
    "redis_check",
]


#: Deadline of a readiness probe that is also its breaker's half-open probe.
PROBE_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class HealthCheck:
    """A named probe of one dependency; it raises (or returns False) when unhealthy."""

    name: str
    probe: Callable[[], Awaitable[Any]]


def postgres_check(engine: Any, name: str = "postgres") -> HealthCheck:
    """``SELECT 1`` on the service's own database."""
    from sqlalchemy import text

    async def probe() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return HealthCheck(name, probe)


def _guarded(
    breaker: Breaker | None, probe: Callable[[], Awaitable[bool]]
) -> Callable[[], Awaitable[bool]]:
    """``probe`` reported at once as down while ``breaker`` is open, its outcome recorded;
    as the breaker's half-open probe it gets :data:`PROBE_TIMEOUT_S`, not the check's
    whole time limit."""
    if breaker is None:
        return probe
    # Raises BreakerOpen at once while open.
    return functools.partial(breaker.call, probe, timeout_s=None, probe_timeout_s=PROBE_TIMEOUT_S)


def redis_check(redis: Any, name: str = "redis", *, breaker: Breaker | None = None) -> HealthCheck:
    """``PING`` on the service's Redis (down at once while its ``breaker`` is open); on a
    cluster, every master."""
    from storefront_kit.redis import ping

    async def probe() -> bool:
        return await ping(redis)

    return HealthCheck(name, _guarded(breaker, probe))


def elasticsearch_check(
    client: Any, name: str = "elasticsearch", *, breaker: Breaker | None = None
) -> HealthCheck:
    """Cluster health is at least yellow (down at once while its ``breaker`` is open)."""

    async def probe() -> bool:
        health = await client.cluster.health(timeout="1s")
        return health["status"] in ("green", "yellow")

    return HealthCheck(name, _guarded(breaker, probe))


async def _run(check: HealthCheck, limit_s: float) -> tuple[str, str]:
    try:
        async with asyncio.timeout(limit_s):
            result = await check.probe()
    except Exception as exc:
        return check.name, f"down: {type(exc).__name__}"
    return check.name, "down" if result is False else "ok"


def health_router(
    checks: Callable[[Request], Sequence[HealthCheck]], *, timeout: float = 1.5
) -> APIRouter:
    """``/health/live`` (the process answers) and ``/health/ready`` (its dependencies do)."""
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live", summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/ready",
        summary="Every dependency of this service answers",
        responses={503: {"description": "A dependency is down; the problem names it"}},
    )
    async def ready(request: Request) -> Response:
        results = dict(await asyncio.gather(*(_run(c, timeout) for c in checks(request))))
        down = sorted(name for name, state in results.items() if state != "ok")
        if down:
            return problem_response(
                503,
                code="dependency_unavailable",
                detail=f"Not ready: {', '.join(down)} unavailable.",
                extra={"checks": results, "down": down},
            )
        return JSONResponse({"status": "ok", "checks": results})

    return router
