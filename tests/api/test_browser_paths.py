"""The browser forms of intake: Analytics.js short paths, settings documents, the pixel."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from segmint.api.browser import GIF
from segmint.intake.keys import create_key

from .conftest import NOW, Live

SHOP = "https://shop.example"


def public_key(live: Live, **kwargs: Any) -> str:
    kwargs.setdefault("origins", (SHOP,))
    _, secret = create_key(live.workspace.store, "site", now=NOW, **kwargs)
    return secret


def text_plain(payload: dict[str, Any], **headers: str) -> dict[str, Any]:
    """What Analytics.js sends: a JSON body labelled text/plain, the key inside."""
    return {"content": orjson.dumps(payload), "headers": {"Content-Type": "text/plain"} | headers}


@pytest.mark.parametrize(
    ("path", "payload", "stored"),
    [
        (
            "t",
            {"event": "Product Viewed", "properties": {"sku": "s1"}},
            ("track", "Product Viewed"),
        ),
        ("p", {"name": "Home", "properties": {"path": "/"}}, ("page", "Home")),
        ("i", {"userId": "u1", "traits": {"email": "a@b.c"}}, ("identify", None)),
        ("g", {"groupId": "g1"}, ("group", None)),
        ("a", {"userId": "u1", "previousId": "anon-1"}, ("alias", None)),
        ("s", {"name": "Cart"}, ("screen", "Cart")),
    ],
)
def test_short_paths_store_the_call_with_the_key_in_a_text_plain_body(
    live: Live, path: str, payload: dict[str, Any], stored: tuple[str, str | None]
) -> None:
    key = public_key(live)
    message = {"writeKey": key, "anonymousId": "anon-1", "messageId": f"m-{path}"} | payload
    with live.client() as c:
        r = c.post(f"/v1/{path}", **text_plain(message, Origin=SHOP))
    assert (r.status_code, r.json()) == (200, {"success": True}), r.text
    rows = live.workspace.store.fetchall("SELECT type, event, source FROM events")
    assert rows == [(*stored, "site")]
    assert key not in str(live.workspace.store.fetchall("SELECT * FROM events"))


def test_short_batch_and_dedupe_like_v1_batch(live: Live) -> None:
    key = public_key(live)
    batch = [
        {"type": "page", "anonymousId": "a1", "messageId": "b1", "name": "Home"},
        {"type": "track", "anonymousId": "a1", "messageId": "b2", "event": "Product Viewed"},
    ]
    body = {"writeKey": key, "batch": batch, "sentAt": NOW.isoformat()}
    with live.client() as c:
        for _ in range(2):  # sent twice: stored once
            r = c.post("/v1/b", **text_plain(body))
            assert r.status_code == 200, r.text
    assert live.count() == 2


@pytest.mark.parametrize(
    ("path", "content", "status", "field"),
    [
        ("t", b"{not json", 400, "body"),
        ("t", b"[1]", 400, "body"),
        ("t", b'{"anonymousId": "a"}', 401, "writeKey"),
        ("t", b'{"writeKey": "sgm_nope", "anonymousId": "a", "event": "x"}', 401, "writeKey"),
        ("t", b'{"writeKey": "KEY", "event": "x"}', 400, "userId"),
        ("t", b'{"writeKey": "KEY", "anonymousId": "a"}', 400, "event"),
        ("b", b'{"writeKey": "KEY", "batch": {}}', 400, "batch"),
        ("t", b'{"writeKey": "KEY", "anonymousId": "a", "event": "' + b"x" * 40_000 + b'"}',
         413, "body"),
    ],
)  # fmt: skip
def test_short_paths_refuse_what_v1_refuses(
    live: Live, path: str, content: bytes, status: int, field: str
) -> None:
    key = public_key(live)
    with live.client() as c:
        r = c.post(f"/v1/{path}", content=content.replace(b"KEY", key.encode()))
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field
    assert live.count() == 0


def test_analytics_js_settings_point_the_library_at_this_server(live: Live) -> None:
    key = public_key(live, consent_category="Analytics")
    with live.client() as c:
        r = c.get(f"/v1/projects/{key}/settings", headers={"Origin": SHOP})
    assert r.status_code == 200, r.text
    settings = r.json()
    segmentio = settings["integrations"]["Segment.io"]
    assert segmentio["apiKey"] == key
    assert segmentio["apiHost"] == live.url.removeprefix("http://") + "/v1"
    assert segmentio["protocol"] == "http"
    assert list(settings["integrations"]) == ["Segment.io"]  # no destination to fetch
    assert settings["remotePlugins"] == [] and settings["metrics"]["sampleRate"] == 0
    assert segmentio["consentSettings"] == {"categories": ["Analytics"]}
    assert r.headers["access-control-allow-origin"] == SHOP


def test_rudderstack_source_config(live: Live) -> None:
    key = public_key(live)
    with live.client() as c:
        by_query = c.get("/sourceConfig/", params={"writeKey": key, "p": "npm", "v": "3"})
        by_header = c.get("/sourceConfig", auth=(key, ""))
    assert by_query.status_code == by_header.status_code == 200
    source = by_query.json()["source"]
    assert source["destinations"] == [] and source["enabled"] is True
    assert source["writeKey"] == key and source["name"] == "site"
    assert by_header.json() == by_query.json()


@pytest.mark.parametrize("url", ["/v1/projects/sgm_nope/settings", "/sourceConfig/?writeKey=x"])
def test_settings_for_an_unknown_key_are_refused(live: Live, url: str) -> None:
    with live.client() as c:
        r = c.get(url)
    assert r.status_code == 401 and r.json()["error"]["field"] == "writeKey"


def test_settings_for_a_read_key_are_refused(live: Live) -> None:
    with live.client() as c:
        r = c.get(f"/v1/projects/{live.read_key}/settings")
    assert r.status_code == 403 and "write" in r.json()["error"]["message"]


def b64(payload: dict[str, Any], alphabet: str = "standard") -> str:
    raw = orjson.dumps(payload)
    if alphabet == "urlsafe":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("alphabet", ["standard", "urlsafe"])
def test_pixel_stores_the_event_and_answers_a_gif(live: Live, alphabet: str) -> None:
    key = public_key(live)
    track = {"writeKey": key, "userId": "u1", "event": "Email Seen", "properties": {"a": "é?&"}}
    page = {"writeKey": key, "anonymousId": "a9", "name": "Landing", "messageId": "px-1"}
    with live.client() as c:
        r1 = c.get("/v1/pixel/track", params={"data": b64(track, alphabet)})
        r2 = c.get("/v1/pixel/page", params={"data": b64(page, alphabet)})
    for r in (r1, r2):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/gif" and r.content == GIF
        assert r.headers["cache-control"] == "no-store"
    rows = live.workspace.store.fetchall("SELECT type, event, properties FROM events ORDER BY 1")
    assert [(t, e) for t, e, _ in rows] == [("page", "Landing"), ("track", "Email Seen")]
    assert orjson.loads(rows[1][2]) == {"a": "é?&"}


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/v1/pixel/track", 400, "data: is required"),
        ("/v1/pixel/track?data=%%%", 400, "not valid base64"),
        ("/v1/pixel/track?data=bm90IGpzb24", 400, "not base64 of JSON"),
        ("/v1/pixel/track?data=WzFd", 400, "must encode a JSON object"),
        ("/v1/pixel/trak?data=e30", 404, "no pixel for 'trak': use track or page"),
        ("/v1/pixel/track?data=" + "A" * 50_000, 413, "over the"),
        ("/v1/pixel/track?data=e30", 401, "no API key"),
    ],
)
def test_pixel_refuses_bad_input_with_a_clear_error(
    live: Live, url: str, status: int, message: str
) -> None:
    with live.client() as c:
        r = c.get(url)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]
    assert live.count() == 0


def test_pixel_validates_the_message_like_intake(live: Live) -> None:
    key = public_key(live)
    with live.client() as c:
        r = c.get("/v1/pixel/track", params={"data": b64({"writeKey": key, "userId": "u"})})
    assert r.status_code == 400 and r.json()["error"]["field"] == "event"
