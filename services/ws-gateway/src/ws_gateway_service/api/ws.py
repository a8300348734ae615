"""``GET /ws``: one authenticated socket per browser tab.

The access token comes in the ``Sec-WebSocket-Protocol`` header as ``bearer, <token>``
(what a browser can send; it stays out of URLs and access logs), or as
``Authorization: Bearer`` from non-browser clients. Close codes: 4401 missing, invalid
or expired token (also when the token expires on an open socket, or when its user is
erased), 4408 idle timeout, 4429 too slow to keep up (its queue overflowed), 1013 Redis
unavailable (retry later).
"""

import asyncio
import contextlib
from datetime import UTC, datetime

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from jwt_core_lib import TokenClaims
from storefront_kit.logging import get_logger
from storefront_kit.security import ServiceSecurity
from ws_gateway_service.deps import SecurityDep, StateDep
from ws_gateway_service.service.hub import Connection
from ws_gateway_service.service.presence import Presence

router = APIRouter()
logger = get_logger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_IDLE = 4408
CLOSE_TOO_SLOW = 4429
CLOSE_TRY_AGAIN_LATER = 1013


def _token_from(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The bearer token and the subprotocol to echo back (if it came that way)."""
    protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if len(protocols) >= 2 and protocols[0].lower() == "bearer" and protocols[1]:
        return protocols[1], "bearer"
    authorization = websocket.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip(), None
    return None, None


async def _authenticate(websocket: WebSocket, security: ServiceSecurity) -> TokenClaims | None:
    token, subprotocol = _token_from(websocket)
    await websocket.accept(subprotocol=subprotocol)
    if token is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "missing token")
        return None
    try:
        return await security.user_verifier.verify(token)
    except HTTPException as exc:
        await websocket.close(CLOSE_UNAUTHORIZED, getattr(exc, "code", "invalid_token"))
        return None


async def _send_loop(websocket: WebSocket, connection: Connection) -> int:
    while True:
        message = await connection.queue.get()
        if message is None:
            return CLOSE_UNAUTHORIZED if connection.revoked else CLOSE_TOO_SLOW
        await websocket.send_text(message)


async def _receive_loop(websocket: WebSocket, idle_timeout_s: float) -> int:
    while True:
        try:
            async with asyncio.timeout(idle_timeout_s):
                text = await websocket.receive_text()
        except TimeoutError:
            return CLOSE_IDLE
        if text == '{"type":"ping"}' or text == "ping":
            await websocket.send_text('{"type":"pong"}')


async def _touch(presence: Presence, connection: Connection) -> None:
    # Presence is advisory: a Redis hiccup must not close a working socket; the next
    # heartbeat refreshes the entry, and a missed one only shortens its time online.
    try:
        await presence.touch(connection.user_id, connection.id)
    except RedisError as exc:
        logger.warning("presence_touch_failed", error=repr(exc))


async def _expiry(expires_at: datetime) -> int:
    # A token is only good until it expires, even on a socket that is already open.
    await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
    return CLOSE_UNAUTHORIZED


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket, state: StateDep, security: SecurityDep) -> None:
    """Live order status for the user; staff (admins, moderators) also get ``admin.alerts``."""
    claims = await _authenticate(websocket, security)
    if claims is None:
        return
    settings, hub, presence = state.settings, state.hub, state.presence
    connection = Connection(
        user_id=claims.subject,
        # Staff (admins and moderators, who may read) get the alerts; only admins act on them.
        is_staff=claims.has_role("admin") or claims.has_role("moderator"),
        expires_at=claims.expires_at,
        queue_size=settings.send_queue_size,
    )
    # Queued before the socket is registered: the welcome is always its first message
    # (the replica's heartbeat may offer a ping as soon as it is registered).
    connection.offer(
        {
            "type": "welcome",
            "user_id": claims.subject,
            "admin": claims.has_role("admin"),
            "staff": connection.is_staff,
        }
    )
    try:
        await hub.register(connection)
    except RedisError as exc:
        # Without its channels this socket would get no pushes: the client comes back later.
        logger.warning("ws_redis_unavailable", error=repr(exc))
        await websocket.close(CLOSE_TRY_AGAIN_LATER, "redis unavailable")
        return
    await _touch(presence, connection)
    tasks = [
        asyncio.create_task(_send_loop(websocket, connection)),
        asyncio.create_task(_receive_loop(websocket, settings.idle_timeout_s)),
        asyncio.create_task(_expiry(claims.expires_at)),
    ]
    close_code = 1000
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finished = done.pop()
        if not finished.cancelled() and finished.exception() is None:
            close_code = finished.result()
        elif isinstance(finished.exception(), WebSocketDisconnect):
            close_code = 0  # the client left
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await hub.unregister(connection)
        presence.remove_later(connection.user_id, connection.id)  # the next heartbeat tick
        if close_code:
            with contextlib.suppress(Exception):
                await websocket.close(close_code)
