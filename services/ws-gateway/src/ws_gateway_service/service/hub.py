"""Local sockets of this replica and the bounded queue in front of each one."""

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import Counter, Gauge

from ws_gateway_service.clients.channels import ADMIN_ALERTS, ChannelLayer, user_channel

__all__ = ["SESSION_REVOKED", "Connection", "Hub"]

OPEN_SOCKETS = Gauge("ws_open_sockets", "WebSocket connections open on this replica.")
MESSAGES_SENT = Counter("ws_messages_queued_total", "Messages queued to sockets.", ["kind"])
SLOW_CLIENTS = Counter("ws_slow_clients_dropped_total", "Sockets closed for falling behind.")


SESSION_REVOKED = "session.revoked"
"""A control message on a user's channel: close every socket of the user, everywhere."""


@dataclass(eq=False)
class Connection:
    """One socket: who it is, and the bounded queue the sender drains."""

    user_id: str
    is_staff: bool
    expires_at: datetime
    queue_size: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    overflowed: bool = False
    #: The user was erased: the socket closes with 4401 (its token is revoked).
    revoked: bool = False
    #: Serialized messages: a fan-out encodes its message once, not once per socket.
    queue: asyncio.Queue[str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_size)
        self._spread = int(self.id[:8], 16)

    def slot(self, slots: int) -> int:
        """Which of ``slots`` heartbeat ticks this socket belongs to (stable, spread)."""
        return self._spread % slots

    def revoke(self) -> None:
        """Close the socket at once: its user was erased (the sender sees the sentinel)."""
        self.revoked = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    def offer(self, message: dict[str, Any] | str) -> bool:
        """Queue a message (a dict, or JSON text already encoded); a full queue marks the
        client too slow (it is then dropped)."""
        if self.overflowed:
            return False
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed = True
            SLOW_CLIENTS.inc()
            # Make room for the sentinel so the sender wakes up and closes the socket.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False
        return True


class Hub:
    """Tracks this replica's sockets and routes channel messages to them."""

    def __init__(self, *, heartbeat_slots: int = 1) -> None:
        self.channels: ChannelLayer | None = None
        self._by_user: dict[str, set[Connection]] = defaultdict(set)
        self._admins: set[Connection] = set()
        #: The heartbeat's ticks per interval; each socket is due in one of them.
        self.heartbeat_slots = heartbeat_slots
        # Sockets by heartbeat tick, kept as they come and go: each tick takes its own
        # set instead of filtering all 10,000 sockets ten times a second.
        self._by_slot: list[set[Connection]] = [set() for _ in range(heartbeat_slots)]
        self._lock = asyncio.Lock()

    def bind(self, channels: ChannelLayer) -> None:
        """Attach the channel layer (built with :meth:`deliver` as its callback)."""
        self.channels = channels

    def due(self, slot: int) -> list[Connection]:
        """A snapshot of the open sockets whose heartbeat falls in tick ``slot``."""
        return list(self._by_slot[slot])

    @property
    def connection_count(self) -> int:
        """Open sockets on this replica."""
        return sum(len(c) for c in self._by_user.values())

    async def register(self, connection: Connection) -> None:
        """Start routing the user's (and, for staff, the alerts) channel to this socket."""
        assert self.channels is not None
        await self.channels.join(user_channel(connection.user_id))
        if connection.is_staff:
            try:
                await self.channels.join(ADMIN_ALERTS)
            except BaseException:
                # All or nothing: a socket that is not registered holds no channel.
                await self.channels.leave(user_channel(connection.user_id))
                raise
        async with self._lock:
            self._by_user[connection.user_id].add(connection)
            self._by_slot[connection.slot(self.heartbeat_slots)].add(connection)
            if connection.is_staff:
                self._admins.add(connection)
        OPEN_SOCKETS.inc()

    async def unregister(self, connection: Connection) -> None:
        """Stop routing to a closed socket."""
        assert self.channels is not None
        async with self._lock:
            sockets = self._by_user.get(connection.user_id)
            if sockets is not None:
                sockets.discard(connection)
                if not sockets:
                    del self._by_user[connection.user_id]
            self._by_slot[connection.slot(self.heartbeat_slots)].discard(connection)
            self._admins.discard(connection)
        await self.channels.leave(user_channel(connection.user_id))
        if connection.is_staff:
            await self.channels.leave(ADMIN_ALERTS)
        OPEN_SOCKETS.dec()

    async def deliver(self, channel: str, payload: dict[str, Any]) -> None:
        """Channel-layer callback: queue ``payload`` to every local socket of the channel."""
        if channel == ADMIN_ALERTS:
            targets: list[Connection] = list(self._admins)
            message = {"channel": ADMIN_ALERTS, **payload}
            kind = "admin_alert"
        elif channel.startswith("ws.user."):
            targets = list(self._by_user.get(channel.removeprefix("ws.user."), ()))
            if payload.get("type") == SESSION_REVOKED:
                for connection in targets:
                    connection.revoke()
                return
            message = {"channel": "user", **payload}
            kind = "user"
        else:
            return
        text = orjson.dumps(message).decode()
        queued = sum(1 for connection in targets if connection.offer(text))
        MESSAGES_SENT.labels(kind).inc(queued)  # once per fan-out, not once per socket
