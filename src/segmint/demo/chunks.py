"""The shop in chunks of customers, generated in a helper process while the caller ingests.

Generating the shop costs about a quarter of the demo's ingest time. On a machine with a
second core, a helper process generates the next chunks while the demo's process pushes the
current one through intake. Chunks are the same as :class:`~segmint.demo.generator.Shop`
yields in-process, in the same order (a test holds the two paths to that), so where no
helper process can be started the demo generates in-process and nothing else changes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from segmint.demo.customer import Customer
from segmint.demo.generator import Shop, ShopConfig, ShopStats

CHUNK = 200
"""Customers per chunk (about 5,000 messages)."""
AHEAD = 3
"""Chunks generated ahead of the one being ingested."""


@dataclass
class Chunk:
    """Customers ``start`` to ``stop`` (exclusive) with their messages.

    Attributes:
        start: The first customer's index.
        stop: One past the last customer's index.
        messages: Their messages, customer after customer.
        ids: (anonymousId, userId or None, archetype name) per customer.
        esp: What the shop's email provider knows of them: rows of ``kind``
            (``unsubscribed`` or ``bounced``), ``user_id``, ``email``, ``occurred_at``.
        stats: Counts over these customers.
    """

    start: int
    stop: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    ids: list[tuple[str, str | None, str]] = field(default_factory=list)
    esp: list[dict[str, str]] = field(default_factory=list)
    stats: ShopStats = field(default_factory=ShopStats)


def generate_chunk(config: ShopConfig, start: int, stop: int) -> Chunk:
    """Generate customers ``start`` to ``stop`` of the shop described by ``config``."""
    shop = Shop(config)
    chunk = Chunk(start, stop, stats=shop.stats)
    for index in range(start, stop):
        customer, messages = shop.customer(index)
        shop.count(customer, messages)
        chunk.messages.extend(messages)
        who = customer.identity
        user = who.user_id if who.identified_at is not None else None
        chunk.ids.append((who.anonymous_id, user, customer.archetype.name))
        chunk.esp.extend(_provider_records(customer, messages))
    return chunk


PROVIDER_EVENTS = {"Unsubscribed": "unsubscribed", "Email Bounced": "bounced"}


def _provider_records(customer: Customer, messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "kind": PROVIDER_EVENTS[m["event"]],
            "user_id": customer.identity.user_id,
            "email": customer.email or "",
            "occurred_at": m["timestamp"],
        }
        for m in messages
        if m.get("event") in PROVIDER_EVENTS
    ]


def chunks(
    config: ShopConfig, *, size: int = CHUNK, helper: bool = True
) -> Generator[Chunk, None, None]:
    """Yield the shop in chunks of ``size`` customers, in order.

    Args:
        config: The shop.
        size: Customers per chunk.
        helper: Generate in a helper process when the machine has more than one core.
    """
    bounds = [(a, min(a + size, config.customers)) for a in range(0, config.customers, size)]
    if helper and len(bounds) > AHEAD and (os.cpu_count() or 1) > 1:
        pool = _helper_pool()
        if pool is not None:
            yield from _ahead(pool, config, bounds)
            return
    for start, stop in bounds:
        yield generate_chunk(config, start, stop)


def _helper_pool() -> ProcessPoolExecutor | None:
    try:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    except (OSError, NotImplementedError, ValueError):
        return None


def _ahead(
    pool: ProcessPoolExecutor, config: ShopConfig, bounds: list[tuple[int, int]]
) -> Iterator[Chunk]:
    pending: deque[Future[Chunk]] = deque()
    todo = iter(bounds)
    try:
        for start, stop in todo:
            pending.append(pool.submit(generate_chunk, config, start, stop))
            if len(pending) > AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
