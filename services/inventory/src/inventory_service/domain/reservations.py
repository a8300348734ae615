"""Reservation rules: pricing the lines, the request fingerprint, allowed transitions."""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import orjson

from inventory_service.errors import (
    InsufficientStock,
    InvalidRequest,
    MixedCurrency,
    ProductUnavailable,
    ReservationStateConflict,
    UnknownSku,
)

__all__ = [
    "COMMIT",
    "RELEASE",
    "RESTOCK",
    "LineRequest",
    "PricedLine",
    "ProductSnapshot",
    "Quote",
    "Settlement",
    "Transition",
    "check_limits",
    "price_lines",
    "request_fingerprint",
    "require_all_met",
    "snapshot_shortages",
]

RESERVED = "reserved"
COMMITTED = "committed"
RELEASED = "released"
EXPIRED = "expired"
#: A sale given back (the order was cancelled after commit): its units are on hand again.
RETURNED = "returned"

Transition = Literal["apply", "noop"]


@dataclass(frozen=True, slots=True)
class LineRequest:
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class ProductSnapshot:
    """What pricing needs to know about a product at reservation time."""

    sku: str
    name: str
    price: int
    currency: str
    sellable: bool
    #: ``on_hand - reserved`` when read: a snapshot, not a promise (see ``snapshot_shortages``).
    available: int


@dataclass(frozen=True, slots=True)
class PricedLine:
    sku: str
    qty: int
    unit_price: int
    currency: str
    name: str


@dataclass(frozen=True, slots=True)
class Quote:
    """Lines in sku order (the order stock rows are locked in), their total and currency."""

    lines: tuple[PricedLine, ...]
    total: int
    currency: str


def check_limits(
    lines: Iterable[LineRequest], ttl_s: int | None, *, max_lines: int, max_ttl_s: int
) -> None:
    """Refuse requests beyond the limits configured for this deployment."""
    count = sum(1 for _ in lines)
    if count > max_lines:
        raise InvalidRequest(f"At most {max_lines} lines per reservation (got {count}).")
    if ttl_s is not None and ttl_s > max_ttl_s:
        raise InvalidRequest(f"ttl_s may be at most {max_ttl_s} seconds (got {ttl_s}).")


def request_fingerprint(lines: Iterable[LineRequest], ttl_s: int | None) -> str:
    """SHA-256 of the request with lines in sku order: a retry must produce the same one."""
    body = {"items": sorted([line.sku, line.qty] for line in lines), "ttl_s": ttl_s}
    return hashlib.sha256(orjson.dumps(body)).hexdigest()


def price_lines(lines: Iterable[LineRequest], products: Mapping[str, ProductSnapshot]) -> Quote:
    """Price each line from the catalogue, never from the caller; all in one currency."""
    ordered = sorted(lines, key=lambda line: line.sku)
    unknown = [line.sku for line in ordered if line.sku not in products]
    if unknown:
        raise UnknownSku(unknown)
    unsellable = [line.sku for line in ordered if not products[line.sku].sellable]
    if unsellable:
        raise ProductUnavailable(unsellable)
    currencies = sorted({products[line.sku].currency for line in ordered})
    if len(currencies) > 1:
        raise MixedCurrency(
            f"All lines of one reservation must share a currency (got {', '.join(currencies)}).",
            currencies=currencies,
        )
    priced = tuple(
        PricedLine(
            sku=line.sku,
            qty=line.qty,
            unit_price=products[line.sku].price,
            currency=products[line.sku].currency,
            name=products[line.sku].name,
        )
        for line in ordered
    )
    return Quote(
        lines=priced,
        total=sum(line.qty * line.unit_price for line in priced),
        currency=currencies[0],
    )


def snapshot_shortages(
    lines: Iterable[LineRequest], products: Mapping[str, ProductSnapshot]
) -> list[str]:
    """The skus the snapshot already shows short, sorted (empty: worth trying to hold).

    The snapshot is read without a lock: it may refuse early, it never decides a
    success (the hold re-checks every line under its row lock).
    """
    return sorted(line.sku for line in lines if products[line.sku].available < line.qty)


def require_all_met(short_skus: Iterable[str]) -> None:
    """All-or-nothing: one short line fails the whole reservation."""
    short = list(short_skus)
    if short:
        raise InsufficientStock(short)


@dataclass(frozen=True, slots=True)
class Settlement:
    """One way a hold settles: the status it applies to, the ones that mean it is already
    done (a no-op), the status it leaves behind, and what any other status is told."""

    applies_to: str
    done: tuple[str, ...]
    status: str
    refusal: str

    def transition(self, status: str) -> Transition:
        """``apply``, ``noop``, or :class:`ReservationStateConflict` for ``status``."""
        if status == self.applies_to:
            return "apply"
        if status in self.done:
            return "noop"
        raise ReservationStateConflict(
            f"The reservation is {status}; {self.refusal}.", reservation_status=status
        )


#: Releasing a live hold applies; releasing a released or expired one is a no-op.
RELEASE = Settlement(RESERVED, (RELEASED, EXPIRED), RELEASED, "it can no longer be released")
#: Committing a live hold applies; committing twice is a no-op; released cannot sell.
COMMIT = Settlement(RESERVED, (COMMITTED,), COMMITTED, "it can no longer be committed")
#: Returning a sale applies; returning twice is a no-op; a live hold is released instead.
RESTOCK = Settlement(
    COMMITTED, (RETURNED,), RETURNED, "only a committed sale can be returned to stock"
)
