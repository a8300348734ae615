"""What auth's lifespan builds once and every request shares (typed; see
:mod:`storefront_kit.state`)."""

from auth_service.clients.holders import DataHolders
from auth_service.clients.notifications import OtpDelivery
from auth_service.clients.otp_store import OtpStore
from auth_service.service.keys import AccessTokens, AuthKeys
from auth_service.settings import AuthSettings
from storefront_kit.events import OutboxRelay, StreamConsumer
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.state import DatabaseState
from storefront_kit.tasks import TaskSet

__all__ = ["AuthState"]


class AuthState(DatabaseState):
    """Auth's clients: the database, Redis, its keys, and what it calls and consumes."""

    settings: AuthSettings
    otp_store: OtpStore
    rate_limiter: RateLimiter
    #: The keys user tokens are signed with, and the issuer of access tokens.
    keys: AuthKeys
    access_tokens: AccessTokens
    #: OTPs and chat-link changes to notifications, in the background.
    otp_delivery: OtpDelivery
    #: The other services' parts of a data export.
    data_holders: DataHolders
    #: ``user.erased`` leaves through the outbox.
    outbox_relay: OutboxRelay
    #: The other services' audit entries, stored once each.
    audit_consumer: StreamConsumer
    #: Fire-and-forget clean-ups after a commit (an erasure's Redis state).
    tasks: TaskSet
