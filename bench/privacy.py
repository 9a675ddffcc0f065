"""Privacy costs: intake with PII sealed at rest, and the erasure of one person.

One function per figure (others add theirs beside these):

- :func:`bench_intake_sealed`: events/s through :class:`segmint.intake.pipeline.Intake`
  (in process, batches of 500, DuckDB) on a realistic mix (a fifth identifies with email,
  name and phone; orders with an address; page views), with a master key configured (every
  PII value sealed with its profile's AES-GCM key, emails kept as keyed hashes). Baseline:
  the same messages into a workspace without a key, in the same run. Goal: ratio >= 0.8.
- :func:`bench_erase`: ``segmint privacy erase`` of one person with 10,000 events on a store
  of ``SEGMINT_BENCH_EVENTS`` events (default 10,000,000, in 1,000,000 profiles; the bulk is
  written straight into DuckDB, the person through intake, sealed). Baseline: deleting only
  that person's events (the least any erasure must do), same store, same run. Goal: < 1 s.
  The store also holds a quarantine and a webhook outbox of 1 row per 100 events each
  (sealed-looking rows of other people), which erasure searches for the person's rows.

- :func:`bench_seal_existing`: ``segmint privacy seal-existing`` after the intake mix above
  was stored without a key: stored events sealed per second (every pass included: events,
  trait values, identities). Baseline: the plain intake of the same messages, same run.

Size: ``SEGMINT_BENCH_SCALE`` (default 1) times 50,000 events for intake and sealing;
``SEGMINT_BENCH_EVENTS`` for the erasure store.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common as _common
from segmint.intake.pipeline import Intake
from segmint.privacy.erase import erase
from segmint.privacy.keys import generate_master_key, write_key_file
from segmint.privacy.reseal import seal_existing
from segmint.workspace import Workspace

report = _common.report

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
INTAKE_EVENTS = int(50_000 * SCALE)
STORE_EVENTS = int(os.environ.get("SEGMINT_BENCH_EVENTS", "10000000"))
PERSON_EVENTS = 10_000
BATCH = 1000
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def messages(count: int, users: int = 5_000, seed: int = 7) -> list[dict[str, Any]]:
    """A realistic mix of identifies (email, name, phone), orders and page views."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(count):
        user = f"u{rng.randrange(users)}"
        at = (T0 + timedelta(seconds=i)).isoformat()
        base = {"userId": user, "timestamp": at, "messageId": f"m{i}"}
        roll = rng.random()
        if roll < 0.2:
            traits = {"email": f"{user}@example.com", "name": f"Name {user}",
                      "phone": f"+1 555 {i % 10000:04d}", "first_name": "Ada"}  # fmt: skip
            out.append({**base, "type": "identify", "traits": traits})
        elif roll < 0.5:
            props = {"total": round(rng.uniform(5, 300), 2), "address": f"{i} Main St",
                     "category": rng.choice(("shoes", "hats", "bags"))}  # fmt: skip
            out.append({**base, "type": "track", "event": "Order Completed", "properties": props})
        else:
            props = {"url": f"/p/{rng.randrange(500)}", "referrer": "https://search.example"}
            out.append({**base, "type": "track", "event": "Page Viewed", "properties": props,
                        "context": {"ip": "203.0.113.9"}})  # fmt: skip
    return out


def _intake_rate(path: Path, batch: list[dict[str, Any]], sealed: bool) -> float:
    ws = Workspace.init(path, name="bench")
    if sealed:
        write_key_file(path / ".segmint-keys", generate_master_key())
        ws.close()
        ws = Workspace.open(path)
    intake = Intake(ws)
    start = time.perf_counter()
    for i in range(0, len(batch), BATCH):
        intake.submit(batch[i : i + BATCH], source="bench", received_at=T0)
    elapsed = time.perf_counter() - start
    assert ws.privacy.encrypting == sealed
    ws.close()
    return len(batch) / elapsed


def bench_intake_sealed(tmp: Path) -> None:
    """Figure: intake events/s with PII sealed; baseline: without a key (same run)."""
    batch = messages(INTAKE_EVENTS)
    # warm both paths (imports, first DuckDB connection), then alternate to share the noise
    _intake_rate(tmp / "warm", batch[:2000], True)
    plain, sealed = [], []
    for round_ in range(2):
        plain.append(_intake_rate(tmp / f"plain{round_}", batch, False))
        sealed.append(_intake_rate(tmp / f"sealed{round_}", batch, True))
    report("intake with PII sealed at rest", max(sealed), "events/s", baseline=max(plain),
           baseline_name="same messages, no master key", ratio=max(sealed) / max(plain),
           goal="ratio >= 0.8")  # fmt: skip


def _bulk_store(ws: Workspace, events: int) -> None:
    """``events`` events in 1/10 as many profiles, written straight into DuckDB."""
    store = ws.store
    profiles = max(events // 10, 1)
    store.execute(
        "INSERT INTO profiles SELECT 'p_bulk' || i, TIMESTAMP '2025-01-01', "
        "TIMESTAMP '2025-01-01', NULL FROM range(?) t(i)",
        [profiles],
    )
    store.execute(
        "INSERT INTO identities SELECT 'user_id', 'bulk' || i, 'p_bulk' || i, "
        "TIMESTAMP '2025-01-01' FROM range(?) t(i)",
        [profiles],
    )
    store.execute(
        "INSERT INTO events (message_id, type, event, profile_id, user_id, anonymous_id, "
        "timestamp, received_at, source, properties, traits, context) "
        "SELECT 'b' || i, 'track', CASE WHEN i % 3 = 0 THEN 'Order Completed' "
        "ELSE 'Page Viewed' END, 'p_bulk' || (i % ?), 'bulk' || (i % ?), NULL, "
        "TIMESTAMP '2025-01-01' + to_seconds(i % 31536000), TIMESTAMP '2026-01-01', 'bulk', "
        "'{\"total\": 10}', '{}', '{}' FROM range(?) t(i)",
        [profiles, profiles, events],
    )
    side = max(events // 100, 1)  # other people's quarantined input and queued webhooks
    store.execute(
        "INSERT INTO quarantine (received_at, source, payload, reason, field, type, event, "
        "subjects) SELECT TIMESTAMP '2026-01-01', 'bulk', 'encs:' || md5(i::TEXT), 'bulk', "
        "'event', 'track', 'Page Viewed', 's_' || md5(i::TEXT) || ' s_' || md5((i + 1)::TEXT) "
        "FROM range(?) t(i)",
        [side],
    )
    store.execute(
        "INSERT INTO webhook_outbox (webhook, payload, status, attempts, next_attempt_at, "
        "created_at) SELECT 'crm', 'enc:p_bulk' || i || ':' || md5(i::TEXT), "
        "CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'delivered' END, 1, "
        "TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01' FROM range(?) t(i)",
        [side],
    )
    store.execute("CHECKPOINT")


def _person(ws: Workspace, who: str, count: int) -> None:
    batch: list[dict[str, Any]] = [
        {"type": "identify", "userId": who, "timestamp": T0.isoformat(), "messageId": f"{who}-id",
         "traits": {"email": f"{who}@example.com", "name": "Erase Me", "phone": "+1 555 0199"}}
    ]  # fmt: skip
    for i in range(count - 1):
        at = (T0 + timedelta(seconds=i)).isoformat()
        batch.append({"type": "track", "userId": who, "event": "Order Completed",
                      "properties": {"total": 20, "address": "1 Main St"}, "timestamp": at,
                      "messageId": f"{who}-{i}"})  # fmt: skip
    intake = Intake(ws)
    for i in range(0, len(batch), BATCH):
        intake.submit(batch[i : i + BATCH], source="bench", received_at=T0)


def bench_erase(tmp: Path) -> None:
    """Figure: seconds to erase one person with 10k events; baseline: delete their events."""
    path = tmp / "erase"
    Workspace.init(path, name="bench").close()
    write_key_file(path / ".segmint-keys", generate_master_key())
    ws = Workspace.open(path)
    start = time.perf_counter()
    _bulk_store(ws, STORE_EVENTS - 2 * PERSON_EVENTS)
    _person(ws, "target", PERSON_EVENTS)
    _person(ws, "control", PERSON_EVENTS)
    store = ws.store
    total = store.fetchall("SELECT count(*) FROM events")[0][0]
    print(f"built a store of {total:,} events in {time.perf_counter() - start:.0f} s")
    # baseline: only deleting the control person's events (same size, same store)
    control = store.fetchall("SELECT profile_id FROM identities WHERE value = 'control'")[0][0]
    start = time.perf_counter()
    with store.transaction():
        store.execute("DELETE FROM events WHERE profile_id = ?", [control])
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    _, receipt = erase(ws.privacy, "user_id:target", at=T0, actor="bench")
    elapsed = time.perf_counter() - start
    assert receipt.deleted["events"] == PERSON_EVENTS and receipt.keys_destroyed == 1
    report(f"erase one person (10k events) on a {total / 1e6:.1f}M-event store", elapsed, "s",
           baseline=baseline, baseline_name="deleting one person's events only",
           ratio=elapsed / baseline, goal="< 1 s")  # fmt: skip
    ws.close()


def bench_seal_existing(tmp: Path) -> None:
    """Figure: events/s sealed by ``seal_existing``; baseline: plain intake of them."""
    batch = messages(INTAKE_EVENTS)
    path = tmp / "reseal"
    plain = _intake_rate(path, batch, False)
    write_key_file(path / ".segmint-keys", generate_master_key())
    ws = Workspace.open(path)
    start = time.perf_counter()
    found = seal_existing(ws.privacy)
    elapsed = time.perf_counter() - start
    left = ws.store.fetchall("SELECT count(*) FROM events WHERE traits LIKE '%@example.com%'")
    assert left == [(0,)] and found.sealed["events"] > 0, found.as_dict()
    ws.close()
    rate = len(batch) / elapsed
    report("privacy seal-existing", rate, "events/s", baseline=plain,
           baseline_name="plain intake of the same messages", ratio=rate / plain,
           goal="reported (a statement per row: ratio 0.18 at 10k events)")  # fmt: skip


def main() -> None:
    """Run every figure of this benchmark."""
    with tempfile.TemporaryDirectory(prefix="segmint-bench-privacy-") as tmp:
        bench_seal_existing(Path(tmp))
        bench_intake_sealed(Path(tmp))
        bench_erase(Path(tmp))


if __name__ == "__main__":
    main()
