from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pytest

from segmint.store import EVENT_SCHEMA, Store

pytest.importorskip("sklearn", reason="the ml extra (make install) provides scikit-learn")


def orders_table(
    rows: Sequence[tuple[str, datetime, float]], event: str = "Order Completed", prefix: str = "o"
) -> pa.Table:
    """Track events (profile, time, total) as the store's Arrow batch."""
    naive = [t.astimezone(UTC).replace(tzinfo=None) for _, t, _ in rows]
    cols: dict[str, list[Any]] = {
        "message_id": [f"{prefix}{i}" for i in range(len(rows))],
        "type": ["track"] * len(rows),
        "event": [event] * len(rows),
        "profile_id": [p for p, _, _ in rows],
        "user_id": [p for p, _, _ in rows],
        "anonymous_id": [None] * len(rows),
        "timestamp": naive,
        "received_at": naive,
        "source": ["test"] * len(rows),
        "properties": [orjson.dumps({"total": v}).decode() for _, _, v in rows],
        "traits": ["{}"] * len(rows),
        "context": ["{}"] * len(rows),
    }
    return pa.table(cols, schema=EVENT_SCHEMA)


def add_orders(store: Store, rows: Sequence[tuple[str, datetime, float]], **kw: Any) -> None:
    store.append_events(orders_table(rows, **kw))
