"""The breaker's state per dependency on /metrics (docs/operations.md): operators see a
breaker open and close again."""

import pytest
from prometheus_client import REGISTRY

from storefront_kit.breaker import Breaker, BreakerOpen


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(dependency: str) -> float | None:
    return REGISTRY.get_sample_value("dependency_breaker_state", {"dependency": dependency})


async def test_the_state_gauge_follows_open_half_open_and_closed() -> None:
    clock = Clock()
    breaker = Breaker("metrics-dep", failure_threshold=2, reset_timeout_s=2.0, clock=clock)
    assert state("metrics-dep") == 0
    breaker.record_failure()
    assert state("metrics-dep") == 0
    breaker.record_failure()
    assert state("metrics-dep") == 2
    with pytest.raises(BreakerOpen):
        breaker.before_call()
    clock.now += 2.5
    assert breaker.before_call() is True  # the half-open probe
    assert state("metrics-dep") == 1
    breaker.record_success(probe=True)
    assert state("metrics-dep") == 0
