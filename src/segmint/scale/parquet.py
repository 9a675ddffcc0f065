"""``segmint export events --parquet FILE``: the stored events as one Parquet file.

The columns are those of ``events`` that the trait query reads (and the ids), with the JSON
columns as text, which every engine reads (Spark's ``get_json_object``, DuckDB, pandas).
Timestamps stay naive UTC.
"""

from __future__ import annotations

from pathlib import Path

from segmint.store import Store

COLUMNS = (
    "message_id", "profile_id", "user_id", "anonymous_id", "timestamp", "type", "event",
    "properties", "traits", "context", "seq",
)  # fmt: skip
_JSON = ("properties", "traits", "context")
_CHUNK = 200_000


def export_events(store: Store, path: Path) -> int:
    """Write every stored event to the Parquet file ``path``; return how many.

    DuckDB writes the file itself (``COPY``); PostgreSQL is read in chunks of ``seq``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    text = "VARCHAR" if store.dialect == "duckdb" else "TEXT"
    cols = ", ".join(f'CAST("{c}" AS {text}) AS "{c}"' if c in _JSON else f'"{c}"' for c in COLUMNS)
    if store.dialect == "duckdb":
        target = str(path).replace("'", "''")
        store.execute(
            f"COPY (SELECT {cols} FROM events ORDER BY seq) TO '{target}' (FORMAT parquet)"
        )
        return int(store.fetchall("SELECT count(*) FROM events")[0][0])
    schema = pa.schema(
        [(c, pa.timestamp("us") if c == "timestamp" else pa.string()) for c in COLUMNS[:-1]]
        + [("seq", pa.int64())]
    )
    written, last = 0, -1
    with pq.ParquetWriter(str(path), schema) as writer:
        while True:
            rows = store.fetchall(
                f"SELECT {cols} FROM events WHERE seq > ? ORDER BY seq LIMIT {_CHUNK}", [last]
            )
            if not rows:
                break
            columns = {c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)}
            writer.write_table(pa.table(columns, schema=schema))
            written += len(rows)
            last = rows[-1][-1]
    return written
