"""A token bucket that spaces out sends to a configured rate.

The bucket reads a monotonic timer and sleeps through injected callables, so tests drive it
with a fake timer instead of waiting. It measures elapsed time for pacing only; no business
decision depends on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

_EPSILON = 1e-9


class TokenBucket:
    """Allow ``rate`` acquisitions per second on average, with bursts of up to ``burst``.

    Args:
        rate: Tokens added per second; must be positive.
        burst: The bucket's capacity (and its initial fill).
        timer: A monotonic timer in seconds.
        sleep: An awaitable sleep, called with the seconds to wait.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._timer = timer
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = timer()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._timer()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self) -> float:
        """Take a token if one is available.

        Returns:
            0.0 when a token was taken, else the seconds until one will be.
        """
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:  # float rounding must not starve a waiter
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Wait until a token is available and take it (callers are served in order)."""
        async with self._lock:
            while (wait := self.try_acquire()) > 0:
                await self._sleep(wait)
