"""Retries with exponential backoff, deciding only by the Transient / Terminal mark."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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

    def delay(self, attempt: int) -> float:
        """Return the wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * self.factor ** (attempt - 1)))


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> tuple[T, int]:
    """Run ``operation``, retrying errors marked :class:`~segmint.errors.Transient`.

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
            if not isinstance(exc, Transient) or attempt >= policy.max_attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            await sleep(policy.delay(attempt))
            attempt += 1
