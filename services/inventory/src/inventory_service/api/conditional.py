"""ETags and ``If-Match`` (RFC 9110 §13.1.1): a product's ETag is its version."""

from collections.abc import Collection

from inventory_service.errors import PreconditionRequired

__all__ = ["etag", "expected_versions", "required_expected_versions"]


def etag(version: int) -> str:
    """The (strong) entity tag of a product version."""
    return f'"{version}"'


def expected_versions(if_match: str | None) -> Collection[int] | None:
    """Versions an ``If-Match`` header accepts; ``None`` for ``*`` or no header.

    Tags that are not ours (or malformed) can never match: an empty set, so the
    conditional write refuses with 412.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    versions: set[int] = set()
    for raw in if_match.split(",")[:32]:
        tag = raw.strip().removeprefix("W/")
        if len(tag) >= 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit():
            versions.add(int(tag[1:-1][:18]))
    return versions


def required_expected_versions(if_match: str | None) -> Collection[int] | None:
    """Like :func:`expected_versions`, but the header is mandatory (428 without it)."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired(
            "Send If-Match with the ETag from your last GET; blind updates are refused."
        )
    return expected_versions(if_match)
