"""The synthetic shop: a deterministic stream of Segment-spec messages for ``segmint demo``.

>>> shop = Shop(ShopConfig(customers=10))
>>> first = next(shop.messages())
>>> first["messageId"]
'demo-7-000000-0000'

Customers are simulated one at a time (:func:`segmint.demo.customer.simulate`) and their
messages yielded in time order per customer, so memory stays flat however large the shop.
The wall clock is never read: the year ends at :data:`DEFAULT_AS_OF` unless told otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from segmint.demo.customer import Customer, simulate
from segmint.demo.errors import DemoError
from segmint.demo.messages import to_message

DEFAULT_SEED = 7
DEFAULT_CUSTOMERS = 20_000
DEFAULT_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
YEAR = timedelta(days=365)


@dataclass(frozen=True)
class ShopConfig:
    """What to generate.

    Attributes:
        customers: How many customers (visitors included) the shop has.
        seed: The seed; the same seed gives the same messages, byte for byte.
        as_of: The end of the demo year; every event happens before it.
    """

    customers: int = DEFAULT_CUSTOMERS
    seed: int = DEFAULT_SEED
    as_of: datetime = DEFAULT_AS_OF

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise DemoError(f"the shop needs at least one customer, not {self.customers}")
        if self.as_of.tzinfo is None:
            raise DemoError("as_of must be a timezone-aware instant")

    @property
    def start(self) -> datetime:
        """The start of the demo year (12 months before ``as_of``)."""
        return self.as_of - YEAR


@dataclass
class ShopStats:
    """Counts gathered while the shop streams by."""

    customers: int = 0
    messages: int = 0
    identified: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_event: Counter[str] = field(default_factory=Counter)
    archetypes: Counter[str] = field(default_factory=Counter)

    @property
    def anonymous_only(self) -> int:
        """Visitors who never identified."""
        return self.customers - self.identified

    def add(self, other: ShopStats) -> None:
        """Add the counts of ``other`` (a chunk generated elsewhere) to these."""
        self.customers += other.customers
        self.messages += other.messages
        self.identified += other.identified
        self.by_type.update(other.by_type)
        self.by_event.update(other.by_event)
        self.archetypes.update(other.archetypes)


class Shop:
    """A synthetic shop: customers and their messages, generated on demand.

    Args:
        config: What to generate.
    """

    def __init__(self, config: ShopConfig | None = None) -> None:
        self.config = config or ShopConfig()
        self.stats = ShopStats()
        self._end = self.config.as_of.timestamp()

    def customer(self, index: int) -> tuple[Customer, list[dict[str, Any]]]:
        """Return customer ``index`` and their messages in time order."""
        customer, entries = simulate(self.config.seed, index, self._end)
        prefix = f"demo-{self.config.seed}-{index:06d}"
        who = customer.identity
        messages = [to_message(e, f"{prefix}-{n:04d}", who) for n, e in enumerate(entries)]
        return customer, messages

    def customers(self) -> Iterator[tuple[Customer, list[dict[str, Any]]]]:
        """Yield every customer with their messages, counting them into :attr:`stats`."""
        for index in range(self.config.customers):
            customer, messages = self.customer(index)
            self.count(customer, messages)
            yield customer, messages

    def messages(self) -> Iterator[dict[str, Any]]:
        """Yield every message of the shop, one customer after another."""
        for _, messages in self.customers():
            yield from messages

    def batches(self, size: int = 2000) -> Iterator[list[dict[str, Any]]]:
        """Yield the messages in lists of about ``size`` (whole customers per list)."""
        batch: list[dict[str, Any]] = []
        for _, messages in self.customers():
            batch.extend(messages)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def count(self, customer: Customer, messages: list[dict[str, Any]]) -> None:
        """Count one customer and their messages into :attr:`stats`."""
        stats = self.stats
        stats.customers += 1
        stats.messages += len(messages)
        stats.identified += customer.identity.identified_at is not None
        stats.archetypes[customer.archetype.name] += 1
        for message in messages:
            stats.by_type[message["type"]] += 1
            if message["type"] == "track":
                stats.by_event[message["event"]] += 1
