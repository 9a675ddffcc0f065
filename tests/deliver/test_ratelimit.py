"""The token bucket, driven by a fake timer (no waiting, no timed assertions)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.deliver.ratelimit import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def timer(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_then_paced() -> None:
    fake = FakeTime()
    bucket = TokenBucket(10.0, burst=3, timer=fake.timer, sleep=fake.sleep)

    async def main() -> None:
        for _ in range(8):
            await bucket.acquire()

    asyncio.run(main())
    assert fake.slept == pytest.approx([0.1] * 5)
    assert fake.now == pytest.approx(0.5)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=500.0),
    burst=st.integers(min_value=1, max_value=10),
    n=st.integers(min_value=1, max_value=60),
)
def test_never_faster_than_rate_plus_burst(rate: float, burst: int, n: int) -> None:
    fake = FakeTime()
    bucket = TokenBucket(rate, burst=burst, timer=fake.timer, sleep=fake.sleep)

    async def main() -> None:
        for _ in range(n):
            await bucket.acquire()

    asyncio.run(main())
    # n acquisitions need at least (n - burst) / rate seconds, and no more than that.
    assert fake.now == pytest.approx(max(0, n - burst) / rate, rel=1e-6, abs=1e-9)


def test_rejects_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
