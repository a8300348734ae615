"""Fraud rules on checkout, as data: what each rule looks at and what it decides.

A rule set is a JSON list (``ORDERS_FRAUD_RULES``), each rule one object::

    {"name": "user_velocity", "kind": "velocity_user", "limit": 5, "window_s": 3600,
     "action": "refuse"}

Kinds, and when a rule matches:

* ``velocity_user``: this checkout is more than ``limit`` checkouts by the account in
  the last ``window_s`` seconds (counted in Redis, atomically, so concurrent checkouts
  cannot slip past together);
* ``velocity_client``: the same per client address;
* ``declined_in_row``: the account's last ``limit`` settled orders all failed with a
  declined payment;
* ``distinct_tokens``: the account used more than ``limit`` distinct payment tokens in
  the last ``window_s`` seconds, this one included;
* ``amount_new_account``: the order's total is above ``amount`` (minor units; only in
  ``currency`` when given) and the account has fewer than ``min_orders`` confirmed
  orders (a new account).

``action`` is ``refuse`` (the order ends FAILED ``fraud_refused`` before anything is
reserved or charged where the rule allows it, and the checkout answers 403) or ``hold``
(the order waits ON_HOLD until staff approve or reject it). A refusal wins over a hold.
The amount rule needs inventory's prices, so it is evaluated after the stock is held;
every other kind before anything is reserved (:data:`SCREENING_KINDS`).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

__all__ = [
    "AMOUNT_KINDS",
    "SCREENING_KINDS",
    "FraudAction",
    "FraudDecision",
    "FraudRule",
    "FraudSignals",
    "RuleKind",
    "evaluate",
    "parse_rules",
]


class RuleKind(StrEnum):
    VELOCITY_USER = "velocity_user"
    VELOCITY_CLIENT = "velocity_client"
    VELOCITY_PHONE = "velocity_phone"
    DECLINED_IN_ROW = "declined_in_row"
    DISTINCT_TOKENS = "distinct_tokens"
    AMOUNT_NEW_ACCOUNT = "amount_new_account"


class FraudAction(StrEnum):
    ALLOW = "allow"
    HOLD = "hold"
    REFUSE = "refuse"


#: Evaluated before anything is reserved.
SCREENING_KINDS = frozenset(
    {
        RuleKind.VELOCITY_USER,
        RuleKind.VELOCITY_CLIENT,
        RuleKind.VELOCITY_PHONE,
        RuleKind.DECLINED_IN_ROW,
        RuleKind.DISTINCT_TOKENS,
    }
)
#: Evaluated once inventory priced the order.
AMOUNT_KINDS = frozenset({RuleKind.AMOUNT_NEW_ACCOUNT})
_WINDOWED = frozenset(
    {
        RuleKind.VELOCITY_USER,
        RuleKind.VELOCITY_CLIENT,
        RuleKind.VELOCITY_PHONE,
        RuleKind.DISTINCT_TOKENS,
    }
)
_LIMITED = _WINDOWED | {RuleKind.DECLINED_IN_ROW}


class FraudRule(BaseModel):
    """One rule of the set (see the module docstring for the kinds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]
    kind: RuleKind
    action: Literal["refuse", "hold"]
    limit: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    window_s: Annotated[int, Field(ge=1, le=90 * 24 * 3600)] | None = None
    amount: Annotated[int, Field(ge=0)] | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    min_orders: Annotated[int, Field(ge=1, le=1000)] = 1

    @model_validator(mode="after")
    def _complete(self) -> "FraudRule":
        if self.kind in _LIMITED and self.limit is None:
            raise ValueError(f"rule {self.name}: {self.kind} needs a limit")
        if self.kind in _WINDOWED and self.window_s is None:
            raise ValueError(f"rule {self.name}: {self.kind} needs window_s")
        if self.kind in AMOUNT_KINDS and self.amount is None:
            raise ValueError(f"rule {self.name}: {self.kind} needs an amount")
        return self


_RULES = TypeAdapter(list[FraudRule])


def parse_rules(value: str | Sequence[object]) -> tuple[FraudRule, ...]:
    """The rule set from its JSON text (or parsed list); names must be unique."""
    rules = _RULES.validate_json(value) if isinstance(value, str) else _RULES.validate_python(value)
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError("fraud rule names must be unique")
    return tuple(rules)


@dataclass(frozen=True)
class FraudSignals:
    """What the rules look at; a signal not gathered (None) matches no rule."""

    #: Checkouts in each windowed rule's window, this one included (by rule name).
    counts: dict[str, int] = field(default_factory=dict)
    declined_in_row: int | None = None
    total: int | None = None
    currency: str | None = None
    confirmed_orders: int | None = None


@dataclass(frozen=True)
class FraudDecision:
    """The outcome of one evaluation: the action and the rules that matched."""

    action: FraudAction
    matched: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"action": self.action.value, "rules": list(self.matched)}


def _matches(rule: FraudRule, signals: FraudSignals) -> bool:
    if rule.kind in _WINDOWED:
        count = signals.counts.get(rule.name)
        return count is not None and rule.limit is not None and count > rule.limit
    if rule.kind == RuleKind.DECLINED_IN_ROW:
        declined = signals.declined_in_row
        return declined is not None and rule.limit is not None and declined >= rule.limit
    # amount_new_account
    if signals.total is None or signals.confirmed_orders is None or rule.amount is None:
        return False
    if rule.currency is not None and signals.currency != rule.currency:
        return False
    return signals.total > rule.amount and signals.confirmed_orders < rule.min_orders


def evaluate(rules: Iterable[FraudRule], signals: FraudSignals) -> FraudDecision:
    """Which rules match ``signals`` and what that decides (refuse wins over hold)."""
    matched = [rule for rule in rules if _matches(rule, signals)]
    if not matched:
        return FraudDecision(FraudAction.ALLOW)
    action = (
        FraudAction.REFUSE if any(rule.action == "refuse" for rule in matched) else FraudAction.HOLD
    )
    return FraudDecision(action, tuple(rule.name for rule in matched))
