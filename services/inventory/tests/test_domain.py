"""Pure rules, without a database: pricing, fingerprints, transitions, If-Match."""

import pytest

from inventory_service.api.conditional import expected_versions, required_expected_versions
from inventory_service.domain.reservations import (
    COMMIT,
    RELEASE,
    RESTOCK,
    LineRequest,
    ProductSnapshot,
    check_limits,
    price_lines,
    request_fingerprint,
    require_all_met,
    snapshot_shortages,
)
from inventory_service.errors import (
    InsufficientStock,
    InvalidRequest,
    MixedCurrency,
    PreconditionRequired,
    ProductUnavailable,
    ReservationStateConflict,
    UnknownSku,
)

CATALOGUE = {
    "A": ProductSnapshot(
        sku="A", name="Apple", price=120, currency="EUR", sellable=True, available=5
    ),
    "B": ProductSnapshot(
        sku="B", name="Banana", price=45, currency="EUR", sellable=True, available=0
    ),
    "D": ProductSnapshot(
        sku="D", name="Dollar", price=100, currency="USD", sellable=True, available=9
    ),
    "X": ProductSnapshot(
        sku="X", name="Gone", price=1, currency="EUR", sellable=False, available=9
    ),
}


def test_lines_are_priced_from_the_catalogue_in_sku_order() -> None:
    quote = price_lines([LineRequest("B", 3), LineRequest("A", 2)], CATALOGUE)
    assert [(line.sku, line.qty, line.unit_price, line.name) for line in quote.lines] == [
        ("A", 2, 120, "Apple"),
        ("B", 3, 45, "Banana"),
    ]
    assert (quote.total, quote.currency) == (2 * 120 + 3 * 45, "EUR")


def test_pricing_refuses_unknown_unsellable_and_mixed_currency_lines() -> None:
    with pytest.raises(UnknownSku) as unknown:
        price_lines([LineRequest("A", 1), LineRequest("Z", 1), LineRequest("Y", 1)], CATALOGUE)
    assert unknown.value.extra == {"skus": ["Y", "Z"]}
    with pytest.raises(ProductUnavailable) as unavailable:
        price_lines([LineRequest("X", 1)], CATALOGUE)
    assert unavailable.value.extra == {"skus": ["X"]}
    with pytest.raises(MixedCurrency) as mixed:
        price_lines([LineRequest("A", 1), LineRequest("D", 1)], CATALOGUE)
    assert mixed.value.extra == {"currencies": ["EUR", "USD"]}
    assert mixed.value.status_code == 422


def test_a_snapshot_shortage_lists_every_short_sku_in_order() -> None:
    assert snapshot_shortages([LineRequest("A", 5), LineRequest("D", 9)], CATALOGUE) == []
    lines = [LineRequest("D", 10), LineRequest("A", 6), LineRequest("B", 1)]
    assert snapshot_shortages(lines, CATALOGUE) == ["A", "B", "D"]


def test_fingerprint_ignores_line_order_but_not_quantities_or_ttl() -> None:
    base = request_fingerprint([LineRequest("A", 1), LineRequest("B", 2)], None)
    assert base == request_fingerprint([LineRequest("B", 2), LineRequest("A", 1)], None)
    assert base != request_fingerprint([LineRequest("A", 1), LineRequest("B", 3)], None)
    assert base != request_fingerprint([LineRequest("A", 1), LineRequest("B", 2)], 60)
    assert len(base) == 64


def test_limits_and_all_or_nothing() -> None:
    check_limits([LineRequest("A", 1)], 60, max_lines=1, max_ttl_s=60)
    with pytest.raises(InvalidRequest):
        check_limits([LineRequest("A", 1)] * 2, None, max_lines=1, max_ttl_s=60)
    with pytest.raises(InvalidRequest):
        check_limits([LineRequest("A", 1)], 61, max_lines=1, max_ttl_s=60)
    require_all_met([])
    with pytest.raises(InsufficientStock) as short:
        require_all_met(["B", "A"])
    assert short.value.extra == {"skus": ["A", "B"]}
    assert short.value.code == "insufficient_stock"


@pytest.mark.parametrize(
    ("status", "release", "commit", "restock"),
    [
        ("reserved", "apply", "apply", None),
        ("released", "noop", None, None),
        ("expired", "noop", None, None),
        ("committed", None, "noop", "apply"),
        ("returned", None, None, "noop"),
    ],
)
def test_transitions(
    status: str, release: str | None, commit: str | None, restock: str | None
) -> None:
    for settlement, expected in ((RELEASE, release), (COMMIT, commit), (RESTOCK, restock)):
        if expected is None:
            with pytest.raises(ReservationStateConflict) as refused:
                settlement.transition(status)
            assert refused.value.extra == {"reservation_status": status}
        else:
            assert settlement.transition(status) == expected


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        (None, None),
        ("*", None),
        ('"3"', {3}),
        ('W/"3"', {3}),
        ('"3", "4"', {3, 4}),
        ("3", set()),
        ('"abc"', set()),
        ('"-1"', set()),
    ],
)
def test_if_match_parsing(header: str | None, versions: set[int] | None) -> None:
    assert expected_versions(header) == versions


def test_if_match_is_required_for_updates() -> None:
    for header in (None, "", "  "):
        with pytest.raises(PreconditionRequired):
            required_expected_versions(header)
    assert required_expected_versions('"7"') == {7}
