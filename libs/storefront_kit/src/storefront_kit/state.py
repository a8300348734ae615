"""The typed state a service's lifespan builds, and how requests reach it.

A service's ``lifespan`` builds its clients once (Redis, the engine and sessionmaker,
an Elasticsearch client, the objects made of them) and **yields them as one object**:
a class of its own subclassing :class:`ServiceState` (or :class:`DatabaseState` for a
service that owns a database), which makes it a frozen, keyword-only dataclass::

    class InventoryState(DatabaseState):
        settings: InventorySettings
        outbox_relay: OutboxRelay

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[InventoryState]:
        ...
        yield InventoryState(settings=..., redis=..., engine=..., ...)

The kit's app factory (:func:`storefront_kit.app.create_service_app`) keeps the object
for as long as the lifespan runs, in one place of its own, and forgets it on shutdown.
Dependencies ask for it by its type: ``Annotated[InventoryState,
Depends(state_dependency(InventoryState))]`` hands an endpoint the state with its real
type, and :func:`service_state` does the same for a health check, a WebSocket or a test
holding the app; :func:`state_part` hands an endpoint one client of it
(``Annotated[Redis, Depends(state_part(InventoryState, lambda state: state.redis))]``).
Nothing else writes to ``app.state``.

Why the app and not Starlette's per-request lifespan state (a lifespan yielding a
``dict`` that every request's ``request.state`` copies): the state is also needed
outside a request (tests hold the app, not a request), and a client that drives the
app without a server (``httpx.ASGITransport(app=app)``) carries no lifespan state into
its requests. The state still lives exactly as long as the lifespan: kept when it has
started, forgotten before its clients are closed.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, dataclass_transform

from fastapi.requests import HTTPConnection
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from storefront_kit.breaker import Breaker
from storefront_kit.settings import ServiceSettings

__all__ = [
    "DatabaseState",
    "ServiceState",
    "find_service_state",
    "forget_service_state",
    "keep_service_state",
    "service_state",
    "state_dependency",
    "state_part",
]

S = TypeVar("S", bound="ServiceState")
T = TypeVar("T")

#: The one attribute of ``app.state`` the kit writes; read through :func:`service_state`.
_ATTRIBUTE = "storefront_service_state"


@dataclass_transform(frozen_default=True, kw_only_default=True, eq_default=False)
@dataclass(frozen=True, kw_only=True, eq=False)
class ServiceState:
    """What every service's lifespan builds: its settings and its Redis client.

    Subclasses add their own clients and narrow ``settings`` to their settings class;
    each subclass is a dataclass as this one is (written nowhere else): frozen (built
    once, then only read), keyword-only (fields are added below the base's defaults),
    and compared by identity (one state a lifespan).
    """

    settings: ServiceSettings
    redis: Redis
    #: The breaker a dependency watch opens while Redis does not answer (None: not
    #: watched). What reads Redis on every request (the token revocation check) skips it
    #: while open instead of waiting out a timeout.
    redis_breaker: Breaker | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True, kw_only=True, eq=False)(cls)


class DatabaseState(ServiceState):
    """The state of a service that owns a database (what ``request_session`` reads)."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


def keep_service_state(app: Starlette, state: ServiceState) -> None:
    """Make ``state`` the app's lifespan state (the kit's app factory calls this)."""
    setattr(app.state, _ATTRIBUTE, state)


def forget_service_state(app: Starlette) -> None:
    """Drop the app's lifespan state (on shutdown: its clients are closed)."""
    if hasattr(app.state, _ATTRIBUTE):
        delattr(app.state, _ATTRIBUTE)


def _app_of(where: Starlette | HTTPConnection) -> Starlette:
    if isinstance(where, HTTPConnection):
        app: Starlette = where.app
        return app
    return where


def service_state(where: Starlette | HTTPConnection, kind: type[S]) -> S:
    """The running app's lifespan state, as ``kind`` (from the app, a request or a socket).

    Raises ``RuntimeError`` when the app is not running (its lifespan has not started or
    has ended) or its state is not a ``kind``: a wiring mistake, not a request's fault.
    """
    state: Any = getattr(_app_of(where).state, _ATTRIBUTE, None)
    if not isinstance(state, kind):
        found = "nothing" if state is None else type(state).__name__
        raise RuntimeError(
            f"the app's lifespan state is {found}, not a {kind.__name__} "
            "(is the app started, and does its lifespan yield one?)"
        )
    return state


def find_service_state(where: Starlette | HTTPConnection, kind: type[S]) -> S | None:
    """Like :func:`service_state`, but ``None`` when there is no such state."""
    state: Any = getattr(_app_of(where).state, _ATTRIBUTE, None)
    return state if isinstance(state, kind) else None


def state_dependency(kind: type[S]) -> Callable[[HTTPConnection], Awaitable[S]]:
    """A FastAPI dependency that hands an endpoint the lifespan state as ``kind``.

    ``StateDep = Annotated[CatalogState, Depends(state_dependency(CatalogState))]``.
    Works for HTTP requests and WebSockets alike.
    """

    # ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool.
    async def dependency(connection: HTTPConnection) -> S:
        return service_state(connection, kind)

    dependency.__name__ = f"{kind.__name__[0].lower()}{kind.__name__[1:]}_dependency"
    return dependency


def state_part(kind: type[S], part: Callable[[S], T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A FastAPI dependency that hands an endpoint one part of the lifespan state.

    ``OtpStoreDep = Annotated[OtpStore, Depends(state_part(AuthState, lambda s: s.otp_store))]``:
    typed by ``part``, and one dependency to resolve (not the state, then the part).
    """

    async def dependency(connection: HTTPConnection) -> T:
        return part(service_state(connection, kind))

    dependency.__name__ = f"{kind.__name__[0].lower()}{kind.__name__[1:]}_part"
    return dependency
