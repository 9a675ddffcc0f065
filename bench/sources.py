"""Imports and stream consumption: rows/s into the store, against reading alone.

Figures (default 50,000 rows; ``SEGMINT_BENCH_SCALE=4`` for 200,000):

- ``ingest CSV``: ``run_import`` of a shop-orders CSV through the example mapping into a
  fresh DuckDB workspace, durably committed, against the same file read and mapped without
  storing (the reader's own limit). The ratio is the share of that limit the import keeps.
- ``consume Redis``: ``consume`` of the same orders as Segment messages from a Redis stream
  (consumer group, ack after commit), against a bare XREADGROUP + XACK loop over an
  identical stream.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import redis

from common import report
from segmint.clock import SystemClock
from segmint.intake import Intake
from segmint.intake.importers import open_rows, run_import
from segmint.intake.mappings import RowMapper
from segmint.intake.streams import consume, open_source
from segmint.workspace import Workspace

ROWS = 50_000 * int(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
REDIS_URL = os.environ.get("SEGMINT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HEADER = (
    "order_id,order_name,customer_id,email,created_at,financial_status,currency,subtotal,"
    "shipping,tax,discount,total,items,top_category,coupon\n"
)


def write_orders(path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for i in range(ROWS):
            c = i % 5000
            out.write(
                f"{9_000_000 + i},#{i},{c},c{c}@example.com,2026-09-{1 + i % 28:02d} "
                f"10:{i % 60:02d}:00 +0100,paid,EUR,{20 + i % 300}.00,4.90,3.10,0.00,"
                f"{28 + i % 300}.00,{1 + i % 4},Notebooks,\n"
            )


def bench_ingest(folder: Path) -> None:
    ws = Workspace.init(folder / "ws", name="bench")
    mapper = RowMapper.from_workspace(ws.definition.imports, "shop_orders")
    path = folder / "orders.csv"
    write_orders(path)
    start = time.perf_counter()
    mapped = sum(1 for row in open_rows(path).rows(None) if row.values and mapper(row.values))
    read_rate = mapped / (time.perf_counter() - start)
    start = time.perf_counter()
    result = run_import(path, mapper, Intake(ws, SystemClock()), batch_size=2000)
    rate = result.stored / (time.perf_counter() - start)
    assert result.stored == ROWS, result
    report("ingest CSV (DuckDB, durable)", rate, "rows/s", baseline=read_rate,
           baseline_name="read + map only", ratio=rate / read_rate,
           goal=">= 10,000 rows/s")  # fmt: skip
    ws.close()


def bench_consume(folder: Path) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    ws = Workspace.init(folder / "ws2", name="bench2")
    bare, stream = f"bench-bare-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    try:
        for name in (bare, stream):
            pipe = client.pipeline(transaction=False)
            for i in range(ROWS):
                message = {"type": "track", "event": "Order Completed", "userId": f"c{i % 5000}",
                           "messageId": f"m-{i}", "timestamp": "2026-09-01T10:00:00Z",
                           "properties": {"total": 28 + i % 300}}  # fmt: skip
                pipe.xadd(name, {"data": orjson.dumps(message)})
            pipe.execute()
        client.xgroup_create(bare, "g", id="0")
        start = time.perf_counter()
        while reply := client.xreadgroup("g", "c", {bare: ">"}, count=500):
            client.xack(bare, "g", *[entry_id for entry_id, _ in reply[0][1]])
        bare_rate = ROWS / (time.perf_counter() - start)
        source = open_source(f"{REDIS_URL}?stream={stream}&group=g", consumer="c")
        start = time.perf_counter()
        result = consume(source, Intake(ws, SystemClock()), max_messages=ROWS, batch_size=500)
        rate = result.stored / (time.perf_counter() - start)
        source.close()
        assert result.stored == ROWS, result
        report("consume Redis stream (DuckDB, durable)", rate, "messages/s", baseline=bare_rate,
               baseline_name="XREADGROUP + XACK only", ratio=rate / bare_rate,
               goal=">= 10,000 messages/s")  # fmt: skip
    finally:
        client.delete(bare, stream)
        client.close()
        ws.close()


if __name__ == "__main__":
    print(f"{ROWS:,} rows")
    with tempfile.TemporaryDirectory() as tmp:
        bench_ingest(Path(tmp))
        bench_consume(Path(tmp))
