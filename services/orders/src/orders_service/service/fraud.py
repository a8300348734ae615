"""Fraud rules at work: gathering the signals, deciding, alerting and recording.

The rules are data (:mod:`orders_service.domain.fraud`); this module reads what they
look at (velocity counters in Redis, the user's orders in PostgreSQL) for the saga's two
fraud steps (``screen_fraud``, ``check_fraud``), publishes an admin alert for every
decision that is not "allow", and calls :func:`record_fraud_decision` for every decision
(the saga's and the staff's): the one place an audit log hooks in.

Velocity counts live in a Redis sorted set per rule and key (user, client address, the
phone's pseudonym),
members the order ids: one script adds the order, drops what left the window and
counts, atomically, so N concurrent checkouts against a limit of L let exactly L
through; a step run again after a crash adds the same member and counts it once.
"""

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orders_service import repository
from orders_service.clients.alerts import publish_alert
from orders_service.clients.errors import ProviderUnavailable
from orders_service.domain.fraud import (
    AMOUNT_KINDS,
    SCREENING_KINDS,
    FraudAction,
    FraudDecision,
    FraudRule,
    FraudSignals,
    RuleKind,
    evaluate,
)
from orders_service.domain.saga import Reason
from orders_service.repository import AnyOrder
from storefront_kit.logging import get_logger

__all__ = ["FraudChecker", "FraudResult", "record_fraud_decision"]

logger = get_logger(__name__)

# KEYS[1] the window's sorted set; ARGV: member, window in ms.
_COUNT_IN_WINDOW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], window)
return redis.call('ZCARD', KEYS[1])
"""


async def record_fraud_decision(
    *,
    session: AsyncSession | None,
    order: AnyOrder,
    stage: str,
    decision: str,
    rules: list[str],
    actor: str,
    note: str | None = None,
) -> None:
    """Record one fraud decision: the saga's (``actor`` ``"fraud-rules"``, no session) or
    a reviewer's (their subject, inside the request's transaction).

    The decision itself is kept on the order (its fraud step's ``result``); this is the
    call point for the audit log, which writes its row here (with ``session`` when given,
    so the record commits with the decision).
    """
    logger.info(
        "fraud_decision",
        order_id=str(order.id),
        stage=stage,
        decision=decision,
        rules=rules,
        actor=actor,
        reviewed=session is not None,
        has_note=bool(note),
    )


class FraudResult:
    """What a fraud step learned: the decision and the signals behind it."""

    def __init__(self, decision: FraudDecision, signals: dict[str, Any]) -> None:
        self.decision = decision
        self.signals = signals

    def as_dict(self) -> dict[str, Any]:
        return {**self.decision.as_dict(), "signals": self.signals}


class FraudChecker:
    """Evaluates the configured rules for an order (used by the saga's fraud steps)."""

    def __init__(
        self,
        *,
        rules: tuple[FraudRule, ...],
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        namespace: str,
    ) -> None:
        self.rules = rules
        self._sessionmaker = sessionmaker
        self._redis = redis
        self._namespace = namespace
        self._script = redis.register_script(_COUNT_IN_WINDOW)

    def rules_for(self, stage: str) -> tuple[FraudRule, ...]:
        """The rules ``screen`` (before reserving) or ``amount`` (once priced) evaluates."""
        kinds = SCREENING_KINDS if stage == "screen" else AMOUNT_KINDS
        return tuple(rule for rule in self.rules if rule.kind in kinds)

    async def evaluate(self, order: AnyOrder, *, stage: str) -> FraudResult | None:
        """The decision for ``order`` at ``stage``; None when no rule applies there."""
        rules = self.rules_for(stage)
        if not rules:
            return None
        try:
            signals = await self._signals(order, rules)
        except (RedisError, OSError, TimeoutError) as exc:
            raise ProviderUnavailable(
                "fraud", f"signals unavailable: {type(exc).__name__}", uncertain=False
            ) from exc
        decision = evaluate(rules, signals)
        result = FraudResult(decision, _signals_dict(signals))
        await record_fraud_decision(
            session=None,
            order=order,
            stage=stage,
            decision=decision.action.value,
            rules=list(decision.matched),
            actor="fraud-rules",
        )
        if decision.action != FraudAction.ALLOW:
            await publish_alert(
                self._redis,
                f"fraud.{'refused' if decision.action == FraudAction.REFUSE else 'held'}",
                {
                    "order_id": str(order.id),
                    "user_id": order.user_id,
                    "stage": stage,
                    "rules": list(decision.matched),
                    "signals": result.signals,
                },
            )
        return result

    async def _signals(self, order: AnyOrder, rules: tuple[FraudRule, ...]) -> FraudSignals:
        counts: dict[str, int] = {}
        declined: int | None = None
        confirmed: int | None = None
        async with self._sessionmaker() as session:
            for rule in rules:
                if rule.kind == RuleKind.VELOCITY_USER:
                    counts[rule.name] = await self._count(rule, f"u:{order.user_id}", order)
                elif rule.kind == RuleKind.VELOCITY_CLIENT and order.client_address:
                    counts[rule.name] = await self._count(rule, f"c:{order.client_address}", order)
                elif rule.kind == RuleKind.VELOCITY_PHONE and order.phone_ref:
                    counts[rule.name] = await self._count(rule, f"p:{order.phone_ref}", order)
                elif rule.kind == RuleKind.DISTINCT_TOKENS:
                    assert rule.window_s is not None
                    counts[rule.name] = await repository.distinct_payment_tokens(
                        session, user_id=order.user_id, window_s=rule.window_s
                    )
                elif rule.kind == RuleKind.DECLINED_IN_ROW:
                    assert rule.limit is not None
                    found = await repository.declined_in_row(
                        session,
                        user_id=order.user_id,
                        before=order.id,
                        reason=Reason.PAYMENT_DECLINED.value,
                        limit=rule.limit,
                    )
                    declined = max(declined or 0, found)
                elif rule.kind == RuleKind.AMOUNT_NEW_ACCOUNT and confirmed is None:
                    confirmed = await repository.confirmed_order_count(
                        session, user_id=order.user_id
                    )
        return FraudSignals(
            counts=counts,
            declined_in_row=declined,
            total=order.total,
            currency=order.currency,
            confirmed_orders=confirmed,
        )

    async def _count(self, rule: FraudRule, subject: str, order: AnyOrder) -> int:
        assert rule.window_s is not None
        key = f"{self._namespace}:{rule.name}:{subject}"
        count = await self._script(keys=[key], args=[str(order.id), rule.window_s * 1000])
        return int(count)


def _signals_dict(signals: FraudSignals) -> dict[str, Any]:
    gathered: dict[str, Any] = {"counts": signals.counts}
    if signals.declined_in_row is not None:
        gathered["declined_in_row"] = signals.declined_in_row
    if signals.confirmed_orders is not None:
        gathered["confirmed_orders"] = signals.confirmed_orders
        gathered["total"] = signals.total
        gathered["currency"] = signals.currency
    return gathered
