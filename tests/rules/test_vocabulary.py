"""The event and property names a store has seen, on every backend."""

from __future__ import annotations

import json
from datetime import datetime

import pyarrow as pa

from segmint.config.model import TrackingPlan
from segmint.rules.vocabulary import plan_vocabulary, seen_vocabulary
from segmint.store import Store

AT = datetime(2026, 11, 1)


def _append(store: Store, rows: list[tuple[str, str, str | None, object]]) -> None:
    batch = [
        {"message_id": mid, "type": kind, "event": event, "profile_id": "p1", "user_id": "u1",
         "anonymous_id": None, "timestamp": AT, "received_at": AT, "source": None,
         "properties": json.dumps(props), "traits": "{}", "context": "{}"}
        for mid, kind, event, props in rows
    ]  # fmt: skip
    store.append_events(pa.Table.from_pylist(batch))


def test_seen_events_and_their_properties(store: Store) -> None:
    _append(store, [
        ("m1", "track", "Order Completed", {"total": 5, "currency": "EUR"}),
        ("m2", "track", "Order Completed", {"total": 7, "coupon": {"code": "X"}}),
        ("m3", "track", "Product Viewed", {"category": "shoes"}),
        ("m4", "identify", None, {}),
        ("m5", "track", "Email Opened", []),  # properties that are not an object
    ])  # fmt: skip
    vocab = seen_vocabulary(store)
    assert vocab.events == {"Order Completed", "Product Viewed", "Email Opened"}
    assert vocab.properties_of("Order Completed") == {"total", "currency", "coupon"}
    assert vocab.properties_of("Email Opened") == frozenset()
    assert vocab.properties_of(None) == {"total", "currency", "coupon", "category"}
    assert vocab.basis == "the events stored so far"


def test_an_empty_store_knows_nothing(store: Store) -> None:
    vocab = seen_vocabulary(store)
    assert vocab.events == frozenset() and vocab.properties_of(None) == frozenset()


def test_the_tracking_plan_vocabulary() -> None:
    plan = TrackingPlan.model_validate(
        {"events": {"Order Completed": {"properties": {"total": {"type": "number"}}},
                    "Signed Up": {}}}
    )  # fmt: skip
    vocab = plan_vocabulary(plan)
    assert vocab.events == {"Order Completed", "Signed Up"}
    assert vocab.properties_of("Order Completed") == {"total"}
    assert vocab.basis == "the tracking plan"
