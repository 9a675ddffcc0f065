"""The membership engine's surface: CLI commands, the lookup endpoint, insight, explain."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from click.testing import CliRunner

from segmint.api import create_app
from segmint.cli.main import _register_commands, cli
from segmint.clock import FixedClock
from segmint.intake.keys import create_key
from segmint.membership.explain import add_segments, segment_rows
from segmint.membership.service import Membership

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def commands() -> None:
    _register_commands()


def run(ws, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["-w", str(ws.path), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def pid(ws, user: str) -> str:
    rows = ws.store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'user_id' AND value = ?", [user]
    )
    return rows[0][0]


@pytest.fixture
def shop(rig, track):
    rig.send(
        track("ann", "Order Completed", T0 - timedelta(days=1), total=1500),
        track("bob", "Order Completed", T0 - timedelta(days=2), total=600),
        track("bob", "Order Completed", T0 - timedelta(days=1), total=20),
        track("cat", "Product Viewed", T0),
    )
    return rig


def test_segments_list_show_and_overlap(shop):
    ws = shop.ws
    ws.close()
    listed = {r["name"]: r for r in orjson.loads(run(ws, "segments", "list", "--format", "json"))}
    assert listed["recent_buyer"]["size"] == 2 and listed["vip"]["size"] == 1
    assert (
        listed["prospect"]["default"] is True and listed["big_recent"]["parent"] == "recent_buyer"
    )
    assert "recent_buyer" in run(ws, "segments", "list")
    shown = orjson.loads(run(ws, "segments", "show", "recent_buyer", "--format", "json"))
    assert shown["rule"] == "last_purchase_at >= now() - interval '30 days'"
    assert shown["size"] == 2
    assert shown["history"] == [
        {"day": "2026-03-01T00:00:00+00:00", "entered": 2, "exited": 0, "size": 2}
    ]
    assert [c["change"] for c in shown["recent_changes"]] == ["enter", "enter"]
    assert "Size history" in run(ws, "segments", "show", "recent_buyer")
    pairs = orjson.loads(run(ws, "segments", "overlap", "--format", "json"))
    both = next(p for p in pairs if (p["a"], p["b"]) == ("big_recent", "recent_buyer"))
    assert both["both"] == 2 and both["jaccard"] == 1.0
    none = next(p for p in pairs if (p["a"], p["b"]) == ("browsers", "vip"))
    assert none["both"] == 0 and none["jaccard"] == 0.0


def test_overlap_skips_exclusive_pairs_and_filters(shop, cli):
    ws = shop.ws
    ws.close()
    groups = {"vip", "repeat", "lapsed", "prospect"}  # the exclusive group 'lifecycle'
    pairs = orjson.loads(run(ws, "segments", "overlap", "--format", "json"))
    assert len(pairs) == 9 * 8 // 2 - 4 * 3 // 2  # 9 segments, 4 of them in one group
    assert not any({p["a"], p["b"]} <= groups for p in pairs)
    every = orjson.loads(run(ws, "segments", "overlap", "--exclusive-pairs", "--format", "json"))
    inside = [p for p in every if {p["a"], p["b"]} <= groups]
    assert len(inside) == 6 and all(p["both"] == 0 for p in inside)

    with_vip = orjson.loads(run(ws, "segments", "overlap", "--segment", "vip", "--format", "json"))
    assert {p["a"] if p["b"] == "vip" else p["b"] for p in with_vip} == {
        "recent_buyer", "engaged", "big_recent", "vip_engaged", "browsers"
    }  # fmt: skip
    two = run(ws, "segments", "overlap", "--segment", "vip", "--segment", "browsers", "--format",
              "json")  # fmt: skip
    assert all({"vip", "browsers"} & {p["a"], p["b"]} for p in orjson.loads(two))

    shared = orjson.loads(run(ws, "segments", "overlap", "--min-overlap", "2", "--format", "json"))
    assert [(p["a"], p["b"], p["both"]) for p in shared] == [("big_recent", "recent_buyer", 2)]
    top = orjson.loads(run(ws, "segments", "overlap", "--top", "3", "--format", "json"))
    assert [p["both"] for p in top] == sorted((p["both"] for p in top), reverse=True)
    assert len(top) == 3 and (top[0]["a"], top[0]["b"]) == ("big_recent", "recent_buyer")
    assert "no pairs of segments match" in run(ws, "segments", "overlap", "--min-overlap", "9")

    typo = cli("-w", str(ws.path), "segments", "overlap", "--segment", "vipp")
    assert typo.returncode == 1
    assert "unknown segment 'vipp'; did you mean 'vip'?" in typo.stderr
    negative = cli("-w", str(ws.path), "segments", "overlap", "--top", "0")
    assert negative.returncode == 2 and "--top" in negative.stderr


def test_refresh_and_reconcile_commands(shop):
    ws = shop.ws
    ws.close()
    agree = orjson.loads(run(ws, "reconcile", "--as-of", T0.isoformat(), "--format", "json"))
    assert agree["differences"] == []
    later = (T0 + timedelta(days=40)).isoformat()
    differ = orjson.loads(run(ws, "reconcile", "--as-of", later, "--format", "json", code=1))
    assert {d["segment"] for d in differ["differences"]} >= {"recent_buyer", "big_recent"}
    assert "refreshed 3 profiles" in run(ws, "refresh", "--as-of", later)
    assert "agree" in run(ws, "reconcile", "--as-of", later)


def test_webhooks_status_command(shop, monkeypatch):
    ws = shop.ws
    ws.store.execute(
        "INSERT INTO webhook_outbox (webhook, payload, status, attempts, next_attempt_at, "
        "created_at, last_error) VALUES ('crm', '{}', 'dead', 8, ?, ?, 'HTTP 503')",
        [T0.replace(tzinfo=None), T0.replace(tzinfo=None)],
    )
    ws.close()
    status = orjson.loads(run(ws, "webhooks", "status", "--format", "json"))
    assert status["webhooks"]["crm"]["dead"] == 1
    assert status["dead_letters"][0]["last_error"] == "HTTP 503"
    assert "Dead letters" in run(ws, "webhooks", "status")


def test_lookup_endpoint_needs_a_read_key(shop):
    ws = shop.ws
    _, read = create_key(ws.store, "dash", scopes=("read",), now=T0)
    _, write = create_key(ws.store, "web", scopes=("write",), now=T0)
    app = create_app(ws, FixedClock(T0))
    url = f"/v1/profiles/{pid(ws, 'ann')}/segments"

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            reader = {"Authorization": f"Bearer {read}"}
            return [
                await client.get(url, headers=reader),
                await client.get("/v1/profiles/bob/segments?by=user_id", headers=reader),
                await client.get(url),
                await client.get(url, headers={"Authorization": f"Bearer {write}"}),
                await client.get("/v1/profiles/nobody/segments", headers=reader),
            ]

    try:
        ok, by_user, anonymous, writer, missing = asyncio.run(calls())
    finally:
        app.state.committer.close()
    assert ok.status_code == 200
    assert ok.json()["segments"] == ["big_recent", "recent_buyer", "vip"]
    assert by_user.json() == {
        "profile_id": pid(ws, "bob"),
        "segments": ["big_recent", "recent_buyer", "repeat"],
    }
    assert anonymous.status_code == 401 and writer.status_code == 403
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_explain_gives_each_clause_and_the_structure_reason(shop):
    ws = shop.ws
    membership = Membership(ws)
    view = add_segments({"profile_id": pid(ws, "ann")}, ws.store, membership.compiled, T0)
    by_name = {e["segment"]: e for e in view["segments"]}
    vip = by_name["vip_engaged"]
    assert vip["member"] is False and vip["connective"] == "and"
    assert vip["clauses"] == [
        {"clause": "in_segment('vip')", "value": True},
        {"clause": "in_segment('engaged')", "value": False},
    ]
    assert by_name["vip"]["reason"] == "the rule is true" and by_name["vip"]["member"]
    lapsed = by_name["lapsed"]
    assert lapsed["matches"] is False and lapsed["reason"] == "the rule is false"
    assert by_name["prospect"]["reason"] == "another segment of group 'lifecycle' holds the profile"
    rows = {r[0]: r for r in segment_rows(view)}
    assert rows["vip_engaged"][3] == "in_segment('vip') = true\nand in_segment('engaged') = false"
    bob = Membership(ws).explain(pid(ws, "bob"), T0)
    repeat_vs_lapsed = {e["segment"]: e for e in bob["segments"]}
    assert repeat_vs_lapsed["repeat"]["computed"] and repeat_vs_lapsed["repeat"]["member"]
    later = Membership(ws).explain(pid(ws, "bob"), T0 + timedelta(days=61))
    lapsed = {e["segment"]: e for e in later["segments"]}["lapsed"]
    assert lapsed["matches"] is True
    assert lapsed["reason"] == "the rule is true, but 'repeat' ranks higher in group 'lifecycle'"


def test_profile_show_lists_segments_and_why(shop):
    ws = shop.ws
    ann = pid(ws, "ann")
    ws.close()
    view = orjson.loads(
        run(ws, "profile", "show", ann, "--as-of", T0.isoformat(), "--format", "json")
    )
    vip = next(s for s in view["segments"] if s["segment"] == "vip")
    assert vip["member"] is True and vip["clauses"] == [
        {"clause": "lifetime_value >= 1000", "value": True}
    ]
    table = run(ws, "profile", "show", ann, "--as-of", T0.isoformat())
    assert "Segments" in table and "vip_engaged" in table
