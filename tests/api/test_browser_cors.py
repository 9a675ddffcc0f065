"""CORS on the tracking paths: origins per key, preflight, no credentials, no reads."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from segmint.api.cors import OriginRing, is_tracking_path
from segmint.intake.keys import create_key, revoke_key
from segmint.workspace import Workspace

from .conftest import NOW, Live

SHOP = "https://shop.example"
OTHER = "https://blog.example"


def preflight(origin: str, headers: str = "content-type,authorization") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


def keys(live: Live) -> tuple[str, str]:
    _, shop = create_key(live.workspace.store, "shop", now=NOW, origins=(SHOP,))
    _, blog = create_key(live.workspace.store, "blog", now=NOW, origins=(OTHER,))
    return shop, blog


@pytest.mark.parametrize("path", ["/v1/t", "/v1/b", "/v1/track", "/v1/batch", "/v1/identify"])
def test_preflight_from_a_listed_origin_is_answered(live: Live, path: str) -> None:
    keys(live)
    with live.client() as c:
        r = c.options(path, headers=preflight(SHOP, "content-type,authorization,x-retry-count"))
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == SHOP
    assert "POST" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "content-type,authorization,x-retry-count"
    assert "access-control-allow-credentials" not in r.headers
    assert "Origin" in r.headers["vary"]


def test_preflight_from_an_unlisted_origin_is_refused(live: Live) -> None:
    keys(live)
    with live.client() as c:
        r = c.options("/v1/t", headers=preflight("https://evil.example"))
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    error = r.json()["error"]
    assert error["code"] == "origin_not_allowed" and error["field"] == "Origin"
    assert "segmint keys create --name web --origin https://evil.example" in error["message"]


def test_an_event_from_a_listed_origin_is_stored_and_readable_by_the_page(live: Live) -> None:
    shop, _ = keys(live)
    body = orjson.dumps({"writeKey": shop, "anonymousId": "a", "event": "Product Viewed"})
    with live.client() as c:
        r = c.post("/v1/t", content=body, headers={"Origin": SHOP, "Content-Type": "text/plain"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == SHOP
    assert "access-control-allow-credentials" not in r.headers
    assert live.count() == 1


def test_a_key_is_refused_from_an_origin_only_another_key_lists(live: Live) -> None:
    shop, _ = keys(live)
    body = orjson.dumps({"writeKey": shop, "anonymousId": "a", "event": "x"})
    with live.client() as c:
        r = c.post("/v1/t", content=body, headers={"Origin": OTHER})
    assert r.status_code == 403
    assert "may not send with key" in r.json()["error"]["message"]
    assert SHOP in r.json()["error"]["message"]
    assert live.count() == 0


def test_a_server_key_cannot_be_used_from_a_browser(live: Live) -> None:
    keys(live)
    with live.client(auth=(live.write_key, "")) as c:
        r = c.post("/v1/track", json={"userId": "u", "event": "x"}, headers={"Origin": SHOP})
        from_server = c.post("/v1/track", json={"userId": "u", "event": "x", "messageId": "m"})
    assert r.status_code == 403
    assert "is a server key and cannot be used from a browser" in r.json()["error"]["message"]
    assert from_server.status_code == 200
    assert live.count() == 1


def test_rudderstack_long_paths_with_json_and_basic_auth(live: Live) -> None:
    shop, _ = keys(live)
    with live.client(auth=(shop, "")) as c:
        pre = c.options("/v1/page", headers=preflight(SHOP, "content-type,authorization"))
        r = c.post("/v1/page", json={"anonymousId": "a", "name": "Home"}, headers={"Origin": SHOP})
    assert pre.status_code == 204 and r.status_code == 200
    assert r.headers["access-control-allow-origin"] == SHOP


def test_a_public_key_cannot_read_and_reads_never_get_cors(live: Live) -> None:
    shop, _ = keys(live)
    url = "/v1/profiles/anyone/segments"
    with live.client(auth=(shop, "")) as c:
        r = c.get(url, headers={"Origin": SHOP})
        pre = c.options(url, headers=preflight(SHOP))
    assert r.status_code == 403 and "lacks the read scope" in r.json()["error"]["message"]
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in pre.headers
    with live.client(auth=(live.read_key, "")) as c:  # even a read key gets no CORS
        r = c.get(url, headers={"Origin": SHOP})
    assert "access-control-allow-origin" not in r.headers


def test_a_request_without_origin_gets_no_cors_headers(live: Live) -> None:
    shop, _ = keys(live)
    with live.client(auth=(shop, "")) as c:
        r = c.post("/v1/track", json={"userId": "u", "event": "x"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/t", True), ("/v1/b", True), ("/v1/track", True), ("/v1/batch", True),
        ("/v1/projects/k/settings", True), ("/v1/pixel/track", True), ("/sourceConfig/", True),
        ("/sourceConfig", True), ("/v1/profiles/x/segments", False), ("/v1/consent", False),
        ("/v1/suppressions", False), ("/v1/projects/k", False), ("/health", False),
        ("/v1/tt", False), ("/e/o/token", False),
    ],
)  # fmt: skip
def test_only_tracking_paths_take_part_in_cors(path: str, expected: bool) -> None:
    assert is_tracking_path(path) is expected


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_origin_ring_follows_created_and_revoked_keys(ws: Workspace) -> None:
    import asyncio

    ticks = Ticks()
    ring = OriginRing(ws.store, clock=ticks)
    assert not asyncio.run(ring.allows(SHOP))
    create_key(ws.store, "shop", now=NOW, origins=(SHOP, "http://localhost:3000"))
    assert not asyncio.run(ring.allows(SHOP))  # cached for a moment
    ticks.now += 2.5
    assert asyncio.run(ring.allows(SHOP)) and asyncio.run(ring.allows("http://localhost:3000"))
    revoke_key(ws.store, "shop", now=NOW + timedelta(seconds=1))
    ring.forget()
    assert not asyncio.run(ring.allows(SHOP))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/suppressions", {"address": "someone@example.com", "reason": "manual"}),
        ("/v1/consent", {"profileId": "p1", "status": "unsubscribed"}),
    ],
)
def test_a_public_key_cannot_change_consent_or_suppressions(
    live: Live, path: str, body: dict[str, str]
) -> None:
    shop, _ = keys(live)  # published in web pages: anyone could unsubscribe anyone with it
    with live.client(auth=(shop, "")) as c:
        r = c.post(path, json=body)
    assert r.status_code == 403, r.text
    assert "public" in r.json()["error"]["message"]
    assert live.count("SELECT count(*) FROM suppressions") == 0
    assert live.count("SELECT count(*) FROM consents") == 0
