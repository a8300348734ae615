"""Fraud rules as data: parsing, what matches, refuse over hold."""

import pytest
from pydantic import ValidationError

from orders_service.domain.fraud import (
    FraudAction,
    FraudSignals,
    evaluate,
    parse_rules,
)

RULES = parse_rules(
    """[
    {"name": "user_velocity", "kind": "velocity_user", "limit": 3, "window_s": 60,
     "action": "refuse"},
    {"name": "declines", "kind": "declined_in_row", "limit": 2, "action": "refuse"},
    {"name": "many_cards", "kind": "distinct_tokens", "limit": 2, "window_s": 3600,
     "action": "hold"},
    {"name": "big_first", "kind": "amount_new_account", "amount": 10000, "currency": "EUR",
     "min_orders": 1, "action": "hold"}
    ]"""
)


def test_nothing_matches_quiet_signals() -> None:
    decision = evaluate(RULES, FraudSignals(counts={"user_velocity": 3, "many_cards": 2}))
    assert (decision.action, decision.matched) == (FraudAction.ALLOW, ())


def test_a_hold_rule_holds_and_a_refusal_wins_over_it() -> None:
    held = evaluate(RULES, FraudSignals(counts={"many_cards": 3}))
    assert (held.action, held.matched) == (FraudAction.HOLD, ("many_cards",))
    both = evaluate(RULES, FraudSignals(counts={"many_cards": 3, "user_velocity": 4}))
    assert (both.action, set(both.matched)) == (
        FraudAction.REFUSE,
        {"many_cards", "user_velocity"},
    )


def test_declines_in_a_row_match_at_the_limit() -> None:
    assert evaluate(RULES, FraudSignals(declined_in_row=1)).action == FraudAction.ALLOW
    assert evaluate(RULES, FraudSignals(declined_in_row=2)).action == FraudAction.REFUSE


@pytest.mark.parametrize(
    ("total", "currency", "confirmed", "action"),
    [
        (10001, "EUR", 0, FraudAction.HOLD),
        (10000, "EUR", 0, FraudAction.ALLOW),  # not above the amount
        (10001, "EUR", 1, FraudAction.ALLOW),  # not a new account
        (10001, "USD", 0, FraudAction.ALLOW),  # another currency
    ],
)
def test_amount_for_a_new_account(
    total: int, currency: str, confirmed: int, action: FraudAction
) -> None:
    signals = FraudSignals(total=total, currency=currency, confirmed_orders=confirmed)
    assert evaluate(RULES, signals).action == action


@pytest.mark.parametrize(
    "text",
    [
        '[{"name": "v", "kind": "velocity_user", "action": "refuse", "window_s": 60}]',
        '[{"name": "v", "kind": "velocity_user", "action": "refuse", "limit": 1}]',
        '[{"name": "a", "kind": "amount_new_account", "action": "hold"}]',
        '[{"name": "v", "kind": "velocity_user", "action": "block", "limit": 1, "window_s": 1}]',
        '[{"name": "v", "kind": "nope", "action": "hold"}]',
        '[{"name": "d", "kind": "declined_in_row", "action": "hold", "limit": 1, "x": 1}]',
        '{"name": "d"}',
        "not json",
    ],
)
def test_broken_rule_sets_are_refused(text: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        parse_rules(text)


def test_rule_names_are_unique() -> None:
    rule = '{"name": "d", "kind": "declined_in_row", "action": "hold", "limit": 1}'
    with pytest.raises(ValueError, match="unique"):
        parse_rules(f"[{rule}, {rule}]")
