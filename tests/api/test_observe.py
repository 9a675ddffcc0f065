"""/metrics is scraped and parsed as Prometheus text; /healthz and /readyz answer."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from segmint.membership.service import Membership

from .conftest import NOW, Live


def scrape(live: Live) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with live.client() as c:
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_follow_intake_and_membership(live: Live) -> None:
    before = scrape(live)
    assert before[("segmint_events_total", ())] == 0
    track = {"userId": "u1", "event": "Order Completed", "properties": {"total": 1500},
             "timestamp": NOW.isoformat()}  # fmt: skip
    with live.client(auth=(live.write_key, "")) as c:
        for n in range(3):
            assert c.post("/v1/track", json=track | {"messageId": f"m{n}"}).status_code == 200
    Membership(live.workspace).refresh(NOW)
    after = scrape(live)
    assert after[("segmint_events_total", ())] == 3
    ok = ("segmint_http_requests_total",
          (("method", "POST"), ("route", "/v1/track"), ("status", "200")))  # fmt: skip
    assert after[ok] == 3
    assert after[("segmint_http_request_seconds_count", (("route", "/v1/track"),))] == 3
    assert after[("segmint_membership_changes_total", (("change", "enter"),))] >= 1
    assert after[("segmint_intake_commits_total", ())] >= 1
    assert after[("segmint_intake_queue_depth", ())] == 0
    assert after[("segmint_webhook_backlog", ())] == 0
    assert after[("segmint_realtime_lag_events", ())] == 3  # no real-time engine saved state


def test_health_and_readiness(live: Live) -> None:
    with live.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
    live.app.state.committer.close()
    with live.client() as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
