"""The keys auth signs user tokens with, and the access tokens it issues."""

from dataclasses import dataclass, field
from datetime import timedelta

from auth_service.settings import AuthSettings, is_placeholder
from jwt_core_lib import SigningKey, StaticKeySource, TokenIssuer, TokenVerifier, jwks_document
from storefront_kit.logging import get_logger
from storefront_kit.security import MissingSecret

__all__ = ["AuthKeys"]

logger = get_logger(__name__)


@dataclass
class AuthKeys:
    """The current signing key and the retired ones still published during a rotation."""

    current: SigningKey
    previous: list[SigningKey] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> "AuthKeys":
        """Load ``AUTH_JWT_SIGNING_KEY`` (and previous keys); without one only tests start.

        An ephemeral key would work for one process, but tokens would die with it and
        replicas would disagree, so outside tests a placeholder is :class:`MissingSecret`.
        """
        if is_placeholder(settings.jwt_signing_key):
            if settings.platform.environment != "test":
                raise MissingSecret(
                    "AUTH_JWT_SIGNING_KEY must be set to auth's Ed25519 private key (PEM)"
                )
            logger.warning("jwt_signing_key_missing_using_test_key")
            current = SigningKey.generate()
        else:
            current = SigningKey.from_pem(settings.jwt_signing_key.get_secret_value())
        previous = [
            SigningKey.from_pem(pem.get_secret_value())
            for pem in settings.jwt_previous_keys
            if not is_placeholder(pem)
        ]
        return cls(current=current, previous=[k for k in previous if k.kid != current.kid])

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document: the current key first."""
        return jwks_document([self.current, *self.previous])

    def issuer(self, settings: AuthSettings) -> "AccessTokens":
        """The access-token issuer bound to the platform's issuer and audience."""
        return AccessTokens(
            issuer=TokenIssuer(signing_key=self.current, issuer=settings.platform.jwt_issuer),
            audience=settings.platform.jwt_audience,
            ttl=timedelta(seconds=settings.access_token_ttl_s),
        )

    def verifier(self, settings: AuthSettings) -> TokenVerifier:
        """Auth checks its own user tokens locally (no JWKS round trip to itself)."""
        return TokenVerifier(
            key_source=StaticKeySource([self.current, *self.previous]),
            issuer=settings.platform.jwt_issuer,
            audience=settings.platform.jwt_audience,
        )


@dataclass(frozen=True)
class AccessTokens:
    """Signs access tokens: ``sub`` = user id, ``roles`` from the user row."""

    issuer: TokenIssuer
    audience: str
    ttl: timedelta

    def issue(self, *, user_id: str, roles: list[str], phone_ref: str | None = None) -> str:
        """A signed access token for one user (``phone_ref``: see auth_service.fields)."""
        return self.issuer.issue(
            subject=user_id,
            audience=self.audience,
            ttl=self.ttl,
            roles=roles,
            extra={"phone_ref": phone_ref} if phone_ref else None,
        )

    @property
    def ttl_s(self) -> int:
        """Lifetime in seconds (``expires_in``)."""
        return int(self.ttl.total_seconds())
