"""``segments lint``, ``segments diff`` and ``segments preview`` on a real store."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from segmint.clock import FixedClock
from segmint.governance.diff import diff_segments, read_against
from segmint.governance.lint import lint_segments, segment_users
from segmint.intake.pipeline import Intake
from segmint.membership.changes import all_members
from segmint.membership.service import Membership
from segmint.store import utcnow_naive
from segmint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LINTED = """
name: lint
traits:
  orders: {count: events, event: Order Completed}
  lifetime_value: {sum: properties.total, event: Order Completed}
segments:
  buyers: {rule: "orders >= 1 and orders >= 0"}
  customers: {rule: "orders > 0"}
  whales: {rule: "lifetime_value > 100000"}
  anyone: {rule: "orders >= 0"}
  old_promo: {rule: "orders >= 1", lifespan: 2026-02-01}
  targeted: {rule: "lifetime_value >= 50"}
  nested: {rule: "in_segment('whales') and orders >= 1"}
campaigns:
  c: {segment: targeted, template: t, from: "a@b.c"}
"""


def order(user: str, at: datetime, total: float, n: int) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Order Completed",
            "properties": {"total": total}, "timestamp": at.isoformat(),
            "messageId": f"{user}-{n}"}  # fmt: skip


def open_ws(folder: Path, text: str) -> Workspace:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "segmint.yaml").write_text(text)
    return Workspace.open(folder)


@pytest.fixture
def linted(tmp_path: Path) -> Workspace:
    ws = open_ws(tmp_path / "ws", LINTED)
    messages = [order(f"u{i}", T0 - timedelta(days=i), 20.0 * i, i) for i in range(1, 6)]
    messages += [{"type": "track", "userId": f"v{i}", "event": "Page Viewed",
                  "timestamp": T0.isoformat(), "messageId": f"v{i}"} for i in range(2)]  # fmt: skip
    Intake(ws, FixedClock(T0)).submit(messages, source="t")
    Membership(ws).refresh(T0)
    yield ws
    ws.close()


def codes(found: list[Any]) -> set[tuple[str, str]]:
    return {(f.segment, f.code) for f in found}


def test_lint_finds_each_kind(linted: Workspace) -> None:
    found = lint_segments(linted, T0)
    assert codes(found) == {
        ("buyers", "near_duplicate"),  # same members as customers
        ("buyers", "simpler_rule"),  # orders >= 0 follows from orders >= 1
        ("buyers", "unused"), ("customers", "unused"), ("anyone", "unused"),
        ("nested", "unused"), ("old_promo", "unused"),
        ("anyone", "everyone"),
        ("whales", "empty"), ("nested", "empty"),
        ("old_promo", "expired"),
        ("targeted", "idle"),  # only campaign c uses it, and it never sent
    }  # fmt: skip
    simpler = next(f for f in found if f.code == "simpler_rule")
    assert simpler.details["simpler"] == "orders >= 1"
    dup = next(f for f in found if f.code == "near_duplicate")
    assert dup.details["b"] == "customers" and dup.details["jaccard"] == 1.0


def test_a_recent_send_makes_a_segment_used(linted: Workspace) -> None:
    at = utcnow_naive(T0 - timedelta(days=3))
    linted.store.execute(
        "INSERT INTO sends (send_key, campaign, profile_id, status, created_at, updated_at) "
        "VALUES ('k', 'c', 'p', 'sent', ?, ?)", [at, at])  # fmt: skip
    assert ("targeted", "idle") not in codes(lint_segments(linted, T0))
    assert ("targeted", "idle") in codes(lint_segments(linted, T0, unused_days=2))


def test_in_segment_and_templates_count_as_use(linted: Workspace) -> None:
    (linted.path / "templates").mkdir(exist_ok=True)
    (linted.path / "templates" / "t.html").write_text("{% if 'anyone' in segments %}hi{% endif %}")
    users = segment_users(linted.definition, linted.templates_dir)
    assert users["whales"] == {("segment", "nested")}
    assert users["anyone"] == {("template", "t.html")}
    assert users["targeted"] == {("campaign", "c")}


def test_lint_cli(linted: Workspace, cli) -> None:
    result = cli("-w", str(linted.path), "segments", "lint", "--as-of", "2026-03-01T12:00:00Z",
                 "--format", "json")  # fmt: skip
    assert result.returncode == 1
    assert {f["code"] for f in json.loads(result.stdout)["findings"]} >= {"near_duplicate"}
    clean = open_ws(linted.path.parent / "clean", "name: c\nsegments: {}\n")
    assert cli("-w", str(clean.path), "segments", "lint").returncode == 0


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.email=t@e.st", "-c", "user.name=t",
                    *args], check=True, capture_output=True)  # fmt: skip


def test_diff_predicts_what_a_refresh_then_does(linted: Workspace) -> None:
    git(linted.path, "init", "-q")
    git(linted.path, "add", "segmint.yaml")
    git(linted.path, "commit", "-qm", "deployed")
    changed = (
        LINTED.replace('"lifetime_value >= 50"', '"lifetime_value >= 70"')
        .replace('anyone: {rule: "orders >= 0"}', 'anyone: {rule: "orders >= 0", archived: true}')
        .replace("campaigns:", '  fresh: {rule: "lifetime_value >= 80"}\ncampaigns:')
    )
    (linted.path / "segmint.yaml").write_text(changed)
    ws = Workspace(path=linted.path, definition=Workspace.open(linted.path).definition,
                   _store=linted.store)  # fmt: skip
    before, label = read_against(ws.path, "HEAD")
    assert label == "git HEAD"
    members_before = all_members(ws.store)
    diffs = {d.segment: d for d in diff_segments(ws.store, before, ws.definition, T0)}
    assert all_members(ws.store) == members_before  # nothing written
    assert (diffs["targeted"].status, diffs["targeted"].leaving) == ("changed", 1)
    assert (diffs["anyone"].status, diffs["anyone"].leaving) == ("archived", 7)
    assert (diffs["fresh"].status, diffs["fresh"].entering) == ("added", 2)
    assert diffs["buyers"].status == "same" and not diffs["buyers"].leaving
    # the refresh that deploys it does exactly that
    Membership(ws).refresh(T0)
    after = all_members(ws.store)
    for name, d in diffs.items():
        was = {p for p, s in members_before.items() if name in s}
        now = {p for p, s in after.items() if name in s}
        assert (len(now - was), len(was - now)) == (d.entering, d.leaving), name
        assert set(d.sample_entering) <= now - was and set(d.sample_leaving) <= was - now


def test_diff_against_a_file_and_bad_refs(linted: Workspace, cli) -> None:
    other = linted.path.parent / "other.yaml"
    other.write_text(LINTED.replace('"lifetime_value > 100000"', '"lifetime_value > 0"'))
    result = cli("-w", str(linted.path), "segments", "diff", "--against", str(other),
                 "--as-of", "2026-03-01T12:00:00Z", "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    whales = next(s for s in json.loads(result.stdout)["segments"] if s["segment"] == "whales")
    assert (whales["status"], whales["leaving"]) == ("changed", 5)
    missing = cli("-w", str(linted.path), "segments", "diff", "--against", "no-such-ref")
    assert missing.returncode == 1
    assert "git ref 'no-such-ref'" in missing.stderr


def test_preview_cli(linted: Workspace, cli) -> None:
    args = ("-w", str(linted.path), "segments", "preview")
    result = cli(*args, "lifetime_value >= 60", "--as-of", "2026-03-01T12:00:00Z",
                 "--format", "json", "--sample", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["size"] == 3 and len(data["sample"]) == 2
    text = cli(*args, "lifetime_value >= 60", "--as-of", "2026-03-01T12:00:00Z", "--sample", "1")
    assert "3 profiles at 2026-03-01T12:00:00Z" in text.stdout and "2 more" in text.stdout
    bad = cli(*args, "lifetime_valu >= 60")
    assert bad.returncode == 1
    assert "did you mean 'lifetime_value'" in bad.stderr


def test_stored_preview_is_the_refresh_decision(linted: Workspace, tmp_path: Path) -> None:
    from segmint.membership.errors import StalePreviewError
    from segmint.membership.preview import preview_rule, preview_stored

    for rule in ("lifetime_value >= 60", "orders >= 1 and in_segment('targeted')",
                 "lifetime_value < 30 or lifetime_value is null"):  # fmt: skip
        stored = preview_stored(linted.store, linted.definition, rule, limit=50)
        computed = preview_rule(linted.store, linted.definition, rule, T0, limit=50)
        assert (stored.as_of, stored.size, stored.sample) == (T0, computed.size, computed.sample)
    with pytest.raises(StalePreviewError, match="did not compute"):
        preview_stored(linted.store, linted.definition, "performed('Page Viewed')")
    changed = linted.definition.model_copy(update={"traits": {
        **linted.definition.traits,
        "views": linted.definition.traits["orders"].model_copy(update={"count": "events"}),
    }})  # fmt: skip
    with pytest.raises(StalePreviewError, match="changed since"):
        preview_stored(linted.store, changed, "orders >= 1")
    fresh = open_ws(tmp_path / "fresh", LINTED)
    with pytest.raises(StalePreviewError, match="no batch refresh"):
        preview_stored(fresh.store, fresh.definition, "orders >= 1")
    fresh.close()


def test_preview_cli_defaults_to_the_last_refresh(linted: Workspace, cli) -> None:
    result = cli("-w", str(linted.path), "segments", "preview", "orders >= 2", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["basis"] == "the traits of the last refresh"
    assert data["as_of"] == "2026-03-01T12:00:00Z" and data["size"] == 0
    again = cli("-w", str(linted.path), "segments", "preview", "performed('Page Viewed')")
    assert again.returncode == 0
    assert "did not compute" in again.stderr and "computed from the events" in again.stdout
