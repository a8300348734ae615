"""``/api/v1/users/me``: a user's own profile."""

from fastapi import APIRouter

from auth_service.deps import CurrentUser, SessionDep
from auth_service.errors import UserNotFound
from auth_service.schemas import ProfilePatch, UserOut, user_out
from auth_service.service import users
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=responses(401))


@router.get("/me", responses=responses(UserNotFound))
async def get_me(claims: CurrentUser, session: SessionDep) -> UserOut:
    """The caller's profile."""
    return user_out(await users.get_user(session, claims.subject))


@router.patch("/me", responses=responses(UserNotFound, 422))
async def patch_me(body: ProfilePatch, claims: CurrentUser, session: SessionDep) -> UserOut:
    """Change display name, email or locale (a field sent as null is cleared)."""
    changes = body.model_dump(include=body.model_fields_set)
    return user_out(await users.update_profile(session, claims.subject, changes))
