"""The send ledger on both backends: planning, claiming, recovery, counts."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.clock import FixedClock
from segmint.deliver.ledger import MemoryLedger, SendLedger
from segmint.store import Store

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def statuses(ledger: SendLedger) -> dict[str, tuple[str, str | None]]:
    return {r.profile_id: (r.status, r.reason) for r in ledger.rows()}


def test_plan_is_idempotent_and_claim_is_exclusive(store: Store) -> None:
    ledger = SendLedger(store, "spring", FixedClock(T0))
    assert ledger.plan(["p1", "p2", "p2", "p3"]) == 3
    assert ledger.plan(["p1", "p4"]) == 1
    assert {s for s, _ in statuses(ledger).values()} == {"pending"}
    assert ledger.claim("p1", "a@x.com", "<m1@x>")
    assert not ledger.claim("p1", "a@x.com", "<m1@x>")  # held: never twice
    ledger.sent("p1")
    assert not ledger.claim("p1", "a@x.com", "<m1@x>")  # sent: never again
    row = store.fetchall("SELECT attempts, sent_at, message_id FROM sends WHERE profile_id='p1'")
    assert row[0][0] == 1 and row[0][1] == T0.replace(tzinfo=None) and row[0][2] == "<m1@x>"


def test_interrupted_attempts_become_uncertain_and_stay_unsent(store: Store) -> None:
    ledger = SendLedger(store, "spring", FixedClock(T0))
    ledger.plan(["p1", "p2", "p3"])
    ledger.claim("p1", "a@x.com", "<m1@x>")
    ledger.claim("p2", "b@x.com", "<m2@x>")
    ledger.sent("p2")
    resumed = SendLedger(store, "spring", FixedClock(T0))
    assert resumed.recover() == 1
    assert statuses(resumed)["p1"] == ("uncertain", "interrupted_in_transaction")
    assert not resumed.claim("p1", "a@x.com", "<m1@x>")
    assert resumed.release_uncertain() == 1
    assert resumed.claim("p1", "a@x.com", "<m1@x>")


def test_skipped_and_failed_rows_are_looked_at_again(store: Store) -> None:
    ledger = SendLedger(store, "spring", FixedClock(T0))
    ledger.plan(["p1", "p2"])
    ledger.skip([("p1", "no_consent")])
    ledger.failed("p2", "soft_bounce:451")
    assert ledger.counts() == {"skipped": {"no_consent": 1}, "failed": {"soft_bounce:451": 1}}
    assert ledger.claim("p1", "a@x.com", "<m@x>") and ledger.claim("p2", "b@x.com", "<n@x>")


def test_campaigns_do_not_share_rows(store: Store) -> None:
    a = SendLedger(store, "a", FixedClock(T0))
    b = SendLedger(store, "b", FixedClock(T0))
    a.plan(["p1"])
    b.plan(["p1"])
    a.claim("p1", "x@x.com", "<1@x>")
    a.sent("p1")
    assert b.claim("p1", "x@x.com", "<2@x>")


def test_memory_ledger_starts_from_the_store_and_writes_nothing(store: Store) -> None:
    real = SendLedger(store, "spring", FixedClock(T0))
    real.plan(["p1"])
    real.claim("p1", "a@x.com", "<m@x>")
    real.sent("p1")
    dry = MemoryLedger(store, "spring", FixedClock(T0))
    dry.plan(["p1", "p2"])
    assert not dry.claim("p1", "a@x.com", "<m@x>")
    assert dry.claim("p2", "b@x.com", "<n@x>")
    dry.sent("p2")
    assert dry.counts() == {"sent": {"": 2}}
    assert store.fetchall("SELECT count(*) FROM sends")[0][0] == 1


def test_group_ledger_shares_commits_and_keeps_claims_exclusive(store: Store) -> None:
    import asyncio

    from segmint.deliver.group import GroupLedger

    ledger = SendLedger(store, "spring", FixedClock(T0))
    ids = [f"p{i}" for i in range(40)]
    ledger.plan(ids)

    async def main() -> list[bool]:
        group = GroupLedger(ledger)
        # every row claimed twice at once: exactly one of each pair wins
        claims = [group.claim(p, f"{p}@x.com", f"<{p}@x>") for p in ids + ids]
        granted = await asyncio.gather(*claims)
        for p in ids[:30]:
            group.sent(p)
        for p in ids[30:]:
            group.failed(p, "soft_bounce:451")
        await group.drain()
        assert group.commits < len(claims)
        return list(granted)

    granted = asyncio.run(main())
    assert [a + b for a, b in zip(granted[:40], granted[40:], strict=True)] == [1] * 40
    assert ledger.counts() == {"sent": {"": 30}, "failed": {"soft_bounce:451": 10}}


OPS = st.lists(
    st.tuples(
        st.sampled_from(["plan", "claim", "sent", "failed", "skip", "recover", "release"]),
        st.sampled_from(["p1", "p2", "p3", "p4"]),
    ),
    max_size=25,
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_memory_ledger_predicts_the_store_ledger(
    duck_store: Store, ops: list[tuple[str, str]]
) -> None:
    """A dry run's in-memory ledger must answer as the real one would, step by step."""
    duck_store.execute("DELETE FROM sends")
    real = SendLedger(duck_store, "prop", FixedClock(T0))
    for name, pid in ops[: len(ops) // 2]:  # some history in the store first
        _apply(real, name, pid)
    dry = MemoryLedger(duck_store, "prop", FixedClock(T0))
    for name, pid in ops[len(ops) // 2 :]:
        assert _apply(dry, name, pid) == _apply(real, name, pid), (name, pid)
        assert statuses(dry) == statuses(real)


def _apply(ledger: SendLedger, name: str, pid: str) -> object:
    known = {r.profile_id for r in ledger.rows()}
    if name == "plan":
        return ledger.plan([pid])
    if name == "recover":
        return ledger.recover()
    if name == "release":
        return ledger.release_uncertain()
    if pid not in known:
        return None
    if name == "claim":
        return ledger.claim(pid, f"{pid}@x.com", f"<{pid}@x>")
    if name == "skip":
        ledger.skip([(pid, "no_consent")])
    elif name == "sent" and statuses(ledger)[pid][0] == "attempting":
        ledger.sent(pid)
    elif name == "failed" and statuses(ledger)[pid][0] == "attempting":
        ledger.failed(pid, "soft_bounce:451")
    return None


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    size=st.sampled_from([1, 5, 15, 16, 17, 40]),  # below and above the bulk-write threshold
    held=st.sets(st.integers(min_value=0, max_value=39), max_size=6),
)
def test_claim_many_and_sent_many_at_agree_with_one_row_at_a_time(
    store: Store, size: int, held: set[int]
) -> None:
    """Set-based claims and per-row ``sent`` marks do what ``claim`` and ``sent`` do."""
    from datetime import timedelta

    from segmint.deliver.ledger import claim_many, send_key, sent_many_at

    store.execute("DELETE FROM sends")
    rows = [(f"journey:j:s:{i % 3}", f"p{i}", "offers", 1, f"p{i}@x.com", f"<m{i}@x>")
            for i in range(size)]  # fmt: skip
    for i in sorted(held):  # some rows are sent already: never claimed again
        if i < size:
            ledger = SendLedger(store, rows[i][0], FixedClock(T0))
            ledger.plan([rows[i][1]])
            assert ledger.claim(rows[i][1], rows[i][4], rows[i][5])
            ledger.sent(rows[i][1])
    keys = [send_key(r[0], r[1]) for r in rows]
    granted = claim_many(store, rows + rows[:1], T0)  # a key twice is claimed once
    assert granted == {k for i, k in enumerate(keys) if i not in held}
    assert claim_many(store, rows, T0) == set()  # all held or sent now
    marks = [(k, T0 + timedelta(seconds=i)) for i, k in enumerate(keys) if k in granted]
    sent_many_at(store, marks)
    found = dict(store.fetchall("SELECT send_key, sent_at FROM sends WHERE status = 'sent'"))
    assert len(found) == size
    for key, at in marks:
        assert found[key] == at.replace(tzinfo=None)
    updated = dict(store.fetchall("SELECT send_key, updated_at FROM sends"))
    assert all(updated[key] == at.replace(tzinfo=None) for key, at in marks)
