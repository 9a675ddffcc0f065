"""Hostile and broken requests: a 4xx JSON error naming the problem, nothing stored, and the
server keeps serving."""

from __future__ import annotations

import base64
import gzip
import zlib
from typing import Any

import orjson
import pytest

from segmint.intake.keys import create_key, revoke_key

from .conftest import NOW, Live


def deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    root = node
    for _ in range(levels):
        node["k"] = {}
        node = node["k"]
    return root


def msg(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u", "event": "E"} | fields


def batch(*messages: dict[str, Any]) -> bytes:
    return orjson.dumps({"batch": list(messages)})


BAD: list[tuple[str, str, bytes, dict[str, str], int, str | None]] = [
    ("invalid json", "/v1/batch", b'{"batch": [', {}, 400, "body"),
    ("not an object", "/v1/batch", b"[1, 2]", {}, 400, "body"),
    ("empty body", "/v1/track", b"", {}, 400, "body"),
    ("invalid utf-8", "/v1/track", b'{"userId": "\xff", "event": "E"}', {}, 400, "body"),
    ("lone surrogate", "/v1/track", b'{"userId": "\\ud800", "event": "E"}', {}, 400, "body"),
    ("batch not a list", "/v1/batch", orjson.dumps({"batch": {"a": 1}}), {}, 400, "batch"),
    ("wrong type deep in batch", "/v1/batch", batch(msg(), msg(userId=["x"])), {}, 400,
     "batch[1].userId"),
    ("bad timestamp", "/v1/batch", batch(msg(timestamp="soon")), {}, 400, "batch[0].timestamp"),
    ("timestamp out of range", "/v1/track",
     orjson.dumps(msg(timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T00:00:00Z")), {}, 400,
     "timestamp"),
    ("the year 9999", "/v1/track",
     orjson.dumps(msg(event="Order Completed", timestamp="9999-12-31T23:59:59Z")), {}, 400,
     "timestamp"),
    ("the year 9999 in a batch", "/v1/batch",
     batch(msg(), msg(timestamp="9999-12-31T23:59:59Z")), {}, 400, "batch[1].timestamp"),
    ("before 1900", "/v1/track", orjson.dumps(msg(originalTimestamp="0001-01-01T00:00:00Z")),
     {}, 400, "originalTimestamp"),
    ("sentAt in the year 9999", "/v1/batch",
     orjson.dumps({"batch": [msg()], "sentAt": "9999-12-31T23:59:59Z"}), {}, 400,
     "batch[0].sentAt"),
    ("NaN", "/v1/track", b'{"userId": "u", "event": "E", "properties": {"n": NaN}}', {}, 400,
     "body"),
    ("unknown type", "/v1/batch", batch(msg(type="purchase")), {}, 400, "batch[0].type"),
    ("properties not an object", "/v1/track", orjson.dumps(msg(properties="x")), {}, 400,
     "properties"),
    ("very long id", "/v1/track", orjson.dumps(msg(userId="u" * 5000)), {}, 400, "userId"),
    ("NUL in a property", "/v1/track", orjson.dumps(msg(properties={"a": "x\x00y"})), {}, 400,
     "properties.a"),
    ("deeply nested", "/v1/track", orjson.dumps(msg(properties=deep(40))), {}, 400, None),
    ("nested past the JSON parser", "/v1/track", b'{"p":' + b"[" * 5000 + b"]" * 5000 + b"}",
     {}, 400, "body"),
    ("message over 32 KB", "/v1/track", orjson.dumps(msg(properties={"x": "y" * 33_000})), {},
     413, "body"),
    ("batch message over 32 KB", "/v1/batch", batch(msg(properties={"x": "y" * 33_000})), {},
     413, "batch[0]"),
    ("batch over 500 KB", "/v1/batch", batch(*[msg(properties={"x": "y" * 30_000})] * 20), {},
     413, "body"),
    ("bad gzip", "/v1/batch", b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"}, 400,
     "body"),
    ("truncated gzip", "/v1/batch", gzip.compress(batch(msg()))[:-12],
     {"Content-Encoding": "gzip"}, 400, "body"),
    ("gzip bomb", "/v1/batch", gzip.compress(b" " * 20_000_000), {"Content-Encoding": "gzip"},
     413, "body"),
    ("zlib, not gzip", "/v1/batch", zlib.compress(batch(msg()))[:5] + b"xx",
     {"Content-Encoding": "gzip"}, 400, "body"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "content", "headers", "status", "field"), BAD,
                         ids=[b[0] for b in BAD])  # fmt: skip
def test_bad_input_gets_a_named_4xx_and_stores_nothing(
    module_live: Live,
    name: str,
    path: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    live = module_live
    before = [
        live.count(f"SELECT count(*) FROM {t}") for t in ("events", "quarantine", "identities")
    ]
    with live.client(auth=(live.write_key, "")) as c:
        response = c.post(path, content=content, headers=headers)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        if field is not None:
            assert error["field"] == field, error
        else:
            assert "deeper" in error["message"]
        # The server keeps serving, and nothing of the bad request was written.
        after = [
            live.count(f"SELECT count(*) FROM {t}") for t in ("events", "quarantine", "identities")
        ]
        assert after == before
        good = c.post("/v1/track", content=orjson.dumps(msg(messageId=f"after {name}")))
        assert good.status_code == 200
    assert live.count() == before[0] + 1


def test_control_characters_are_stored_verbatim(live: Live) -> None:
    weird = "tab\there \x1b[31mred\x1b[0m \u202eevil \u2028line"
    with live.client(auth=(live.write_key, "")) as c:
        r = c.post("/v1/track", content=orjson.dumps(msg(event=weird, properties={"k": weird})))
    assert r.status_code == 200
    (row,) = live.workspace.store.fetchall("SELECT event, properties FROM events")
    assert row[0] == weird and orjson.loads(row[1]) == {"k": weird}


def test_missing_and_revoked_keys(live: Live) -> None:
    key, secret = create_key(live.workspace.store, "temp", now=NOW)
    body = orjson.dumps(msg())
    with live.client() as c:
        assert c.post("/v1/track", content=body).json()["error"]["field"] == "writeKey"
        assert c.post("/v1/track", content=body, auth=(secret, "")).status_code == 200
        revoke_key(live.workspace.store, key.key_id, now=NOW)
        live.app.state.keys.forget()
        r = c.post("/v1/track", content=body, auth=(secret, ""))
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
        in_body = orjson.dumps(msg(writeKey=secret))
        assert c.post("/v1/track", content=in_body).status_code == 401
    assert live.count() == 1


@pytest.mark.parametrize(
    ("authorization", "says"),
    [
        (None, "no API key"),
        ("Basic " + base64.b64encode(b":secret").decode(), "no user name"),
        ("Basic " + base64.b64encode(b":").decode(), "no user name"),
        ("Basic", "no user name"),
        ("Basic %%%", "not valid base64"),
        ("Basic " + base64.b64encode(b"\xff\xfe:").decode(), "not valid base64"),
        ("Digest abc", "unsupported Authorization scheme"),
        ("Bearer nope", "unknown"),
        ("Basic " + base64.b64encode(b"nope:").decode(), "unknown"),
    ],
)
def test_every_401_names_the_key_field(
    module_live: Live, authorization: str | None, says: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    with module_live.client() as c:
        r = c.post("/v1/track", content=orjson.dumps(msg()), headers=headers)
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["field"]) == (401, "unauthorized", "writeKey")
    assert says in error["message"]


@pytest.mark.parametrize("auth", [False, True])
def test_there_is_no_unauthenticated_noop_endpoint(module_live: Live, auth: bool) -> None:
    credentials = (module_live.write_key, "") if auth else None
    big = zlib.compress(b" " * 500_000)
    with module_live.client() as c:
        r = c.post(
            "/v1/noop", content=big, headers={"Content-Encoding": "deflate"}, auth=credentials
        )
    assert r.status_code in (404, 405)
    assert r.json()["error"]["status"] == r.status_code
