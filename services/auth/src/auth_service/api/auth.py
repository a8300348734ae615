"""``/api/v1/auth``: OTP login, token refresh, logout; and the JWKS."""

from fastapi import APIRouter, Response, status

from auth_service.deps import (
    AccessTokensDep,
    ClientIp,
    DeliveryDep,
    KeysDep,
    OtpStoreDep,
    RateLimiterDep,
    SessionDep,
    SettingsDep,
)
from auth_service.errors import (
    InvalidPhone,
    OtpCooldown,
    OtpExpired,
    OtpInvalid,
    OtpLocked,
    OtpRateLimited,
    RefreshTokenExpired,
    RefreshTokenInvalid,
    RefreshTokenReused,
)
from auth_service.schemas import (
    OtpSendAccepted,
    OtpSendRequest,
    OtpVerifyRequest,
    RefreshRequest,
    TokenPair,
)
from auth_service.service import otp, tokens
from storefront_kit.problems import responses
from storefront_kit.rate_limits import RateLimited, RateLimitUnavailable

__all__ = ["jwks_router", "router"]

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=responses(422))
jwks_router = APIRouter(tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/otp/send",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(InvalidPhone, OtpCooldown, OtpRateLimited, RateLimitUnavailable),
)
async def send_otp(
    body: OtpSendRequest,
    session: SessionDep,
    store: OtpStoreDep,
    limiter: RateLimiterDep,
    delivery: DeliveryDep,
    settings: SettingsDep,
    ip: ClientIp,
) -> OtpSendAccepted:
    """Send a login code to the phone's Telegram chat; the bot link proves a new chat.

    The answer is the same for every phone, registered or not (no registration oracle).
    """
    result = await otp.send_code(
        session=session,
        store=store,
        limiter=limiter,
        delivery=delivery,
        settings=settings,
        phone_text=body.phone,
        client_ip=ip,
    )
    return OtpSendAccepted(
        expires_in=result.expires_in,
        resend_in=result.resend_in,
        telegram_link=result.telegram_link,
    )


@router.post(
    "/otp/verify",
    responses=responses(
        InvalidPhone, OtpInvalid, OtpLocked, OtpExpired, RateLimited, RateLimitUnavailable
    ),
)
async def verify_otp(
    body: OtpVerifyRequest,
    response: Response,
    session: SessionDep,
    store: OtpStoreDep,
    delivery: DeliveryDep,
    limiter: RateLimiterDep,
    access_tokens: AccessTokensDep,
    settings: SettingsDep,
    ip: ClientIp,
) -> TokenPair:
    """Exchange a code for an access and a refresh token (creates the user on first login)."""
    response.headers.update(_NO_STORE)
    return await otp.verify_code(
        session=session,
        store=store,
        delivery=delivery,
        limiter=limiter,
        access_tokens=access_tokens,
        settings=settings,
        phone_text=body.phone,
        code=body.code,
        client_ip=ip,
    )


@router.post(
    "/token/refresh",
    responses=responses(
        RefreshTokenInvalid,
        RefreshTokenExpired,
        RefreshTokenReused,
        RateLimited,
        RateLimitUnavailable,
    ),
)
async def refresh_token(
    body: RefreshRequest,
    response: Response,
    session: SessionDep,
    limiter: RateLimiterDep,
    access_tokens: AccessTokensDep,
    settings: SettingsDep,
    ip: ClientIp,
) -> TokenPair:
    """Rotate a refresh token; presenting a spent one revokes the whole session."""
    await limiter.hit("refresh_ip", ip, scope="ip")
    response.headers.update(_NO_STORE)
    return await tokens.refresh(
        session=session,
        access_tokens=access_tokens,
        settings=settings,
        refresh_token=body.refresh_token,
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, session: SessionDep) -> Response:
    """Revoke the session (refresh family) of this refresh token; unknown tokens are ignored."""
    await tokens.logout(session=session, refresh_token=body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@jwks_router.get("/.well-known/jwks.json")
async def jwks(
    keys: KeysDep, settings: SettingsDep, response: Response
) -> dict[str, list[dict[str, str]]]:
    """Public keys that verify user tokens (current first, then keys being retired)."""
    response.headers["Cache-Control"] = f"public, max-age={settings.jwks_max_age_s}"
    return keys.jwks()
