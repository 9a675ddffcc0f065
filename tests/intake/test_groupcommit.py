from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from segmint.events import Event
from segmint.intake import Intake, Merge
from segmint.intake.errors import IntakeClosed
from segmint.intake.groupcommit import GroupCommitter
from segmint.workspace import Workspace

from .conftest import NOW, scalar, track


def test_many_requests_share_transactions(ws: Workspace, intake: Intake) -> None:
    committer = GroupCommitter(intake, max_wait=0.05)
    notified: list[int] = []

    def listener(events: Sequence[Event], merges: Sequence[Merge]) -> None:
        notified.append(len(events))

    intake.add_listener(listener)
    barrier = threading.Barrier(8)
    results = []

    def client(n: int) -> None:
        sub, _ = intake.decode(
            [track(f"c{n}-{i}", userId=f"u{n}") for i in range(25)], source="web", received_at=NOW
        )
        barrier.wait()
        results.append(committer.submit(sub).result(timeout=30))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    committer.close()
    assert sorted(r.accepted for r in results) == [25] * 8
    assert scalar(ws, "SELECT count(*) FROM events") == 200
    assert committer.commits < 8  # requests were grouped
    assert sum(notified) == 200
    with pytest.raises(IntakeClosed):
        committer.submit(intake.decode([track("late", userId="u")], source="w")[0])


def test_a_failed_group_fails_every_request_in_it(
    ws: Workspace, intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    committer = GroupCommitter(intake)
    monkeypatch.setattr(ws.store, "append_events", lambda *a, **k: 1 / 0)
    future = committer.submit(intake.decode([track("m1", userId="u")], source="w")[0])
    with pytest.raises(ZeroDivisionError):
        future.result(timeout=30)
    monkeypatch.undo()
    ok = committer.submit(intake.decode([track("m1", userId="u")], source="w")[0])
    assert ok.result(timeout=30).accepted == 1
    committer.close()


def test_too_much_waiting_is_refused_as_transient(ws: Workspace, intake: Intake) -> None:
    from segmint.errors import Transient
    from segmint.intake.errors import IntakeBusy

    committer = GroupCommitter(intake, max_pending=30)
    with intake._lock:  # hold the writer: what is submitted now waits
        first = committer.submit(intake.decode([track("m0", userId="u")], source="w")[0])
        many = [track(f"m{i}", userId="u") for i in range(1, 21)]
        second = committer.submit(intake.decode(many, source="w")[0])
        third, _ = intake.decode([track(f"x{i}", userId="u") for i in range(20)], source="w")
        with pytest.raises(IntakeBusy) as info:
            committer.submit(third)
    assert isinstance(info.value, Transient)
    assert first.result(timeout=30).accepted == 1
    assert second.result(timeout=30).accepted == 20
    assert committer.submit(third).result(timeout=30).accepted == 20  # room again
    committer.close()
