"""Admin alerts: ephemeral Redis pub/sub messages ``{type, data, occurred_at}`` on
``admin.alerts`` (the ws-gateway pushes them to staff sockets)."""

from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis

from orders_service.events import ALERTS_CHANNEL
from storefront_kit.logging import get_logger

__all__ = ["publish_alert"]

logger = get_logger(__name__)
ALERTS = Counter("orders_admin_alerts_total", "Alerts published to admin.alerts.", ["type"])


async def publish_alert(redis: Redis, alert_type: str, data: dict[str, Any]) -> None:
    """Publish an admin alert; best effort (pub/sub is ephemeral, a lost alert is logged)."""
    message = {"type": alert_type, "data": data, "occurred_at": datetime.now(UTC).isoformat()}
    try:
        await redis.publish(ALERTS_CHANNEL, orjson.dumps(message, default=str))
    except Exception as exc:  # Redis down must never fail a checkout
        logger.warning("admin_alert_failed", type=alert_type, error=repr(exc))
        return
    ALERTS.labels(alert_type).inc()
