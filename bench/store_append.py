"""Store append throughput: 1M events with realistic JSON properties, on each backend.

Figure: events/s through ``Store.append_events`` (idempotent on message_id, in batches).
Baseline: a bare bulk insert of the same Arrow batches into a table with the same columns
and no key, on the same engine (the engine's own limit). Goal: ratio >= 0.7 on DuckDB.

Size: ``SEGMINT_BENCH_EVENTS`` (default 1,000,000); batch size ``SEGMINT_BENCH_BATCH``.
PostgreSQL is measured when ``SEGMINT_TEST_POSTGRES_URL`` (or the local default) answers.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402
from segmint.store import EVENT_SCHEMA, Store  # noqa: E402
from segmint.store.duckdb import DuckDBStore  # noqa: E402
from segmint.store.schema import EVENT_COLUMNS  # noqa: E402

N = int(os.environ.get("SEGMINT_BENCH_EVENTS", "1000000"))
BATCH = int(os.environ.get("SEGMINT_BENCH_BATCH", "50000"))
PG_URL = os.environ.get("SEGMINT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
EVENTS = ("Product Viewed", "Order Completed", "Cart Abandoned", "Email Opened", "Page Viewed")
CATEGORIES = ("shoes", "shirts", "bags", "hats", "outerwear", "accessories")


def make_batch(rng: random.Random, start: int, size: int) -> pa.Table:
    base = datetime(2026, 1, 1)
    ids, types, names, profiles, anons, stamps, props, ctx = [], [], [], [], [], [], [], []
    for i in range(start, start + size):
        name = rng.choice(EVENTS)
        ids.append(f"m-{i:09d}")
        types.append("track")
        names.append(name)
        profiles.append(f"p{rng.randrange(N // 10 or 1)}")
        anons.append(f"anon-{rng.randrange(10**9)}")
        stamps.append(base + timedelta(seconds=rng.randrange(365 * 86400)))
        items = [
            {"sku": f"SKU-{rng.randrange(5000)}", "category": rng.choice(CATEGORIES),
             "price": round(rng.uniform(5, 300), 2), "quantity": rng.randrange(1, 4)}
            for _ in range(rng.randrange(1, 4))
        ]  # fmt: skip
        props.append(
            orjson.dumps(
                {"total": round(sum(x["price"] * x["quantity"] for x in items), 2),
                 "currency": "EUR", "category": items[0]["category"], "products": items,
                 "url": f"https://shop.example/p/{rng.randrange(5000)}"}
            ).decode()
        )  # fmt: skip
        ctx.append('{"library": {"name": "analytics.js", "version": "4.1.0"}, "ip": "203.0.113.9"}')
    n = len(ids)
    return pa.table(
        {
            "message_id": ids, "type": types, "event": names, "profile_id": profiles,
            "user_id": [None] * n, "anonymous_id": anons, "timestamp": stamps,
            "received_at": stamps, "source": ["bench"] * n, "properties": props,
            "traits": [None] * n, "context": ctx,
        },
        schema=EVENT_SCHEMA,
    )  # fmt: skip


def batches() -> list[pa.Table]:
    rng = random.Random(7)
    return [make_batch(rng, s, min(BATCH, N - s)) for s in range(0, N, BATCH)]


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def bench_duckdb(data: list[pa.Table], tmp: Path) -> None:
    store = DuckDBStore(tmp / "seg.duckdb")
    seconds = timed(lambda: [store.append_events(b) for b in data])
    stored = store.fetchall("SELECT count(*) FROM events")[0][0]
    assert stored == N, stored
    store.close()

    import duckdb

    con = duckdb.connect(str(tmp / "bare.duckdb"))
    # The same column types and sequence as the events table, without the key.
    con.execute("CREATE SEQUENCE s")
    con.execute(
        "CREATE TABLE bare (message_id TEXT, type TEXT, event TEXT, profile_id TEXT, "
        "user_id TEXT, anonymous_id TEXT, timestamp TIMESTAMP, received_at TIMESTAMP, "
        "source TEXT, properties JSON, traits JSON, context JSON, "
        "seq BIGINT DEFAULT nextval('s'))"
    )
    names = ", ".join(f'"{n}"' for n, _ in EVENT_COLUMNS)

    def bare() -> None:
        for b in data:
            con.register("b", b)
            con.execute(f"INSERT INTO bare ({names}) SELECT * FROM b")
            con.unregister("b")

    base = timed(bare)
    con.close()
    report("duckdb append_events", N / seconds, "events/s", baseline=N / base,
           baseline_name="bare INSERT of the same Arrow batches", ratio=base / seconds,
           goal="ratio >= 0.7")  # fmt: skip


def bench_postgres(data: list[pa.Table]) -> None:
    import psycopg

    from segmint.store.postgres import PostgresStore, drop_schema

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        print(f"PostgreSQL skipped: {exc}")
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    store: Store = PostgresStore(PG_URL, schema=schema)
    try:
        seconds = timed(lambda: [store.append_events(b) for b in data])
        assert store.fetchall("SELECT count(*) FROM events")[0][0] == N
        store.execute(
            "CREATE TABLE bare (message_id TEXT, type TEXT, event TEXT, profile_id TEXT, "
            "user_id TEXT, anonymous_id TEXT, timestamp TIMESTAMP, received_at TIMESTAMP, "
            "source TEXT, properties JSONB, traits JSONB, context JSONB)"
        )
        import pyarrow.csv as pacsv

        con = psycopg.connect(PG_URL, autocommit=True)
        con.execute(f'SET search_path TO "{schema}"')

        def bare() -> None:
            for b in data:
                buf = pa.BufferOutputStream()
                opts = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
                pacsv.write_csv(b, buf, write_options=opts)
                with con.cursor().copy("COPY bare FROM STDIN (FORMAT csv)") as copy:
                    copy.write(buf.getvalue().to_pybytes())

        base = timed(bare)
        con.close()
        report("postgres append_events", N / seconds, "events/s", baseline=N / base,
               baseline_name="bare COPY of the same Arrow batches", ratio=base / seconds,
               goal="(none set; DuckDB goal is 0.7)")  # fmt: skip
    finally:
        store.close()
        drop_schema(PG_URL, schema)


def main() -> None:
    print(f"generating {N:,} events in batches of {BATCH:,}", flush=True)
    data = batches()
    with tempfile.TemporaryDirectory() as tmp:
        bench_duckdb(data, Path(tmp))
    bench_postgres(data)


if __name__ == "__main__":
    main()
