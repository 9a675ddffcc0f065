"""Retry policy for every outbound delivery (email and webhooks), deciding only by the mark.

One :class:`RetryPolicy` answers the two questions every sender asks after a failed attempt:
*try again?* (:meth:`RetryPolicy.retryable`: only an error marked
:class:`~segmint.errors.Transient`, and only while attempts remain; an error marked
:class:`~segmint.errors.Terminal`, or unmarked, is final) and *when?*
(:meth:`RetryPolicy.delay`: exponential backoff, capped). Email retries within a run
(:func:`with_retries` sleeps between attempts); durable queues such as the webhook outbox
(:class:`~segmint.deliver.outbox.Outbox`) store the next attempt's instant instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TypeVar

from segmint.errors import Transient

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure.

    Attributes:
        max_attempts: Attempts in total, the first included.
        base_delay: Seconds to wait before the second attempt.
        factor: Each further wait is this many times the previous one.
        max_delay: No single wait is longer than this.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError("delays must be >= 0 and factor >= 1")

    def delay(self, attempt: int) -> float:
        """Return the wait in seconds after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * self.factor ** max(attempt - 1, 0)))

    def backoff(self, attempt: int) -> timedelta:
        """Return :meth:`delay` as a timedelta (for queues that store the next attempt)."""
        return timedelta(seconds=self.delay(attempt))

    def retryable(self, error: BaseException, attempt: int) -> bool:
        """Return whether to try again after failed attempt number ``attempt``.

        Only the :class:`~segmint.errors.Transient` mark counts, never the concrete class:
        a transient error is retried while attempts remain; anything else is final.
        """
        return isinstance(error, Transient) and attempt < self.max_attempts

    def with_attempts(self, max_attempts: int | None) -> RetryPolicy:
        """Return this policy with another attempt limit (itself when ``None``)."""
        if max_attempts is None or max_attempts == self.max_attempts:
            return self
        return replace(self, max_attempts=max_attempts)


WEBHOOK_RETRY = RetryPolicy(max_attempts=8, base_delay=10.0, factor=2.0, max_delay=3600.0)
"""The webhook outbox's default: 10 s, 20 s, 40 s … capped at one hour; eight attempts."""


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> tuple[T, int]:
    """Run ``operation``, retrying as ``policy`` decides (errors marked Transient only).

    Args:
        operation: The coroutine function to run.
        policy: Attempts and backoff.
        sleep: The awaitable sleep used between attempts.
        on_retry: Called with the attempt number and the error before each wait.

    Returns:
        The operation's result and the number of attempts it took.

    Raises:
        Exception: The last error, when it is not transient or attempts ran out.
    """
    attempt = 1
    while True:
        try:
            return await operation(), attempt
        except Exception as exc:
            if not policy.retryable(exc, attempt):
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            await sleep(policy.delay(attempt))
            attempt += 1
