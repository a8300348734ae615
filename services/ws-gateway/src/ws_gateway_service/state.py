"""What the ws-gateway's lifespan builds once and every socket shares (typed; see
:mod:`storefront_kit.state`)."""

from redis.asyncio import Redis

from storefront_kit.state import ServiceState
from ws_gateway_service.clients.channels import ChannelLayer
from ws_gateway_service.service.hub import Hub
from ws_gateway_service.service.presence import Presence
from ws_gateway_service.settings import WsGatewaySettings

__all__ = ["WsGatewayState"]


class WsGatewayState(ServiceState):
    """The ws-gateway's clients: Redis, the channel layer, this replica's sockets, presence."""

    settings: WsGatewaySettings
    #: Pub/sub blocks on reads: the channel layer's own client, without a read timeout.
    pubsub_redis: Redis
    channels: ChannelLayer
    hub: Hub
    presence: Presence
