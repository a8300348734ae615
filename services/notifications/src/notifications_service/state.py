"""What notifications' lifespan builds once and every request shares (typed; see
:mod:`storefront_kit.state`)."""

from notifications_service.clients.auth import AuthClient
from notifications_service.clients.chats import ChatDirectory
from notifications_service.clients.telegram import TelegramBot
from notifications_service.settings import NotificationsSettings
from storefront_kit.events import StreamConsumer
from storefront_kit.state import DatabaseState
from storefront_kit.tasks import TaskSet

__all__ = ["NotificationsState"]


class NotificationsState(DatabaseState):
    """Notifications' clients: the database, Redis, the bot, auth, and its consumers."""

    settings: NotificationsSettings
    auth_client: AuthClient
    chats: ChatDirectory
    telegram: TelegramBot
    #: Fire-and-forget sends (OTPs, bot replies), drained at shutdown.
    tasks: TaskSet
    #: ``orders.events`` (order and payment messages).
    order_consumer: StreamConsumer
    #: ``users.events`` (``user.erased``).
    erasure_consumer: StreamConsumer
