"""One way to ask for a page, and one answer when the page size is out of bounds.

Every list route pages: by number (``?page=2&size=20``: admin users, admin products,
search) or by cursor (``?limit=50&before=...``: the audit log, dead letters, the
inventory export), with a page size whose default and maximum are the service's
settings. The page size parameter keeps its name (``size`` or ``limit``) and the cursor
stays the route's own (its type differs); what is shared is how the size is read and
how a wrong one is refused::

    _PAGE_LIMITS = settings_page_limits(AuthState)  # page_size_default / page_size_max
    UserPaging = Annotated[Paging, Depends(paging_dependency(_PAGE_LIMITS, name="size",
                                                             numbered=True))]

A size below 1 fails the parameter's own bound and a size above the maximum fails the
maximum the settings give; both are the same 422 problem the kit renders for any
request that does not match its schema (``code`` ``validation_error``, an ``errors``
list of ``{loc, msg, type}``), so a client reads one shape whichever bound it crossed
and whichever service it asked. The library reads no configuration: the service hands
it its limits.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, ClassVar, Protocol, cast

from fastapi import Depends, Query
from fastapi.requests import HTTPConnection

from storefront_kit.errors import AppError
from storefront_kit.problems import VALIDATION_DETAIL, VALIDATION_TITLE
from storefront_kit.state import ServiceState, service_state

__all__ = [
    "DEFAULT_MAX_PAGE",
    "InvalidPaging",
    "PageLimits",
    "Paging",
    "check_page_size",
    "paging_dependency",
    "settings_page_limits",
]

#: The deepest page number a numbered route accepts (past it, a 422 like any bound).
DEFAULT_MAX_PAGE = 100_000


@dataclass(frozen=True)
class PageLimits:
    """A service's page sizes: used when the client names none, and the largest allowed."""

    default: int
    maximum: int

    def __post_init__(self) -> None:
        if not 1 <= self.default <= self.maximum:
            raise ValueError(f"page sizes need 1 <= default <= maximum, not {self}")


@dataclass(frozen=True)
class Paging:
    """The page a request asks for: its size, and its number on a numbered route."""

    size: int
    #: 1 on a cursor route (the cursor is the route's own parameter).
    page: int = 1

    @property
    def offset(self) -> int:
        """How many items come before this page (numbered routes)."""
        return (self.page - 1) * self.size


class InvalidPaging(AppError):
    """A page size above the maximum: rendered like any request validation error."""

    status_code: ClassVar[int] = 422
    code = "validation_error"
    title: ClassVar[str] = VALIDATION_TITLE


def check_page_size(size: int, *, maximum: int, name: str, location: str = "query") -> int:
    """``size`` if it is at most ``maximum``, else :class:`InvalidPaging` naming ``name``.

    For a page size that does not arrive through :func:`paging_dependency` (catalog's
    search reads it with the rest of its query model). Below 1 is the parameter's own
    bound (``ge=1``), refused by validation before this runs.
    """
    if size > maximum:
        raise InvalidPaging(
            VALIDATION_DETAIL,
            errors=[
                {
                    "loc": [location, name],
                    "msg": f"Input should be less than or equal to {maximum}",
                    "type": "less_than_equal",
                }
            ],
        )
    return size


def paging_dependency(
    limits: Callable[..., Awaitable[PageLimits]],
    *,
    name: str = "limit",
    numbered: bool = False,
    max_page: int = DEFAULT_MAX_PAGE,
) -> Callable[..., Awaitable[Paging]]:
    """A FastAPI dependency that reads a page from the query string, as a :class:`Paging`.

    ``limits`` is itself a dependency (it may ask for the request, the state, the
    settings) giving the service's :class:`PageLimits`. ``name`` is the page size
    parameter (``limit`` or ``size``); ``numbered`` adds ``page`` (from 1 to
    ``max_page``).
    """
    size_query = Query(
        alias=name,
        ge=1,
        description=(
            "Page size, from 1; the service's settings give its default and its maximum "
            "(larger is a 422 `validation_error`)."
        ),
    )

    def paging(size: int | None, page: int, page_limits: PageLimits) -> Paging:
        if size is None:
            return Paging(size=page_limits.default, page=page)
        return Paging(size=check_page_size(size, maximum=page_limits.maximum, name=name), page=page)

    if numbered:

        async def numbered_page(
            page_limits: Annotated[PageLimits, Depends(limits)],
            page: Annotated[int, Query(ge=1, le=max_page, description="Page number, from 1.")] = 1,
            size: Annotated[int | None, size_query] = None,
        ) -> Paging:
            return paging(size, page, page_limits)

        return numbered_page

    async def cursor_page(
        page_limits: Annotated[PageLimits, Depends(limits)],
        size: Annotated[int | None, size_query] = None,
    ) -> Paging:
        return paging(size, 1, page_limits)

    return cursor_page


class _PageSizeSettings(Protocol):
    page_size_default: int
    page_size_max: int


def settings_page_limits(
    kind: type[ServiceState],
) -> Callable[[HTTPConnection], Awaitable[PageLimits]]:
    """The ``limits`` of :func:`paging_dependency` from the service's own settings.

    The settings of ``kind``'s state must carry ``page_size_default`` and
    ``page_size_max`` (``<PREFIX>_PAGE_SIZE_DEFAULT``/``_MAX``).
    """

    # ``async def``: a plain ``def`` dependency would cost a thread-pool hop per request.
    async def page_limits(connection: HTTPConnection) -> PageLimits:
        settings = cast(_PageSizeSettings, service_state(connection, kind).settings)
        return PageLimits(default=settings.page_size_default, maximum=settings.page_size_max)

    return page_limits
