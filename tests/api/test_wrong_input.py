"""Wrong input to the management, consent, privacy and report endpoints: a 4xx in the one
error shape naming the field, never a 500 and never a silent accept."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from segmint.api import create_app
from segmint.clock import FixedClock
from segmint.intake.keys import create_key
from segmint.intake.pipeline import Intake
from segmint.membership.service import Membership
from segmint.workspace import Workspace

from .conftest import ThreadServer

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Api:
    """A server over a workspace with two customers, and a key of each scope."""

    client: httpx.Client
    ws: Workspace
    keys: dict[str, dict[str, str]]

    def call(
        self,
        scope: str,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = self.keys[scope] | (headers or {})
        return self.client.request(method, path, headers=headers, **kwargs)


def populate(ws: Workspace) -> None:
    """``ada`` (two orders) and ``bob`` (none), refreshed at NOW."""
    at = (NOW - timedelta(days=3)).isoformat()
    messages: list[dict[str, Any]] = [
        {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"},
         "timestamp": at, "messageId": f"i-{user}"}
        for user in ("ada", "bob")
    ] + [
        {"type": "track", "userId": "ada", "event": "Order Completed",
         "properties": {"total": 600}, "timestamp": at, "messageId": f"o-{n}"}
        for n in range(2)
    ]  # fmt: skip
    Intake(ws, FixedClock(NOW)).submit(messages, source="test")
    Membership(ws).refresh(NOW)


def serve(ws: Workspace) -> Iterator[Api]:
    populate(ws)
    keys = {}
    for scope in ("read", "write", "admin"):
        _, secret = create_key(ws.store, scope, scopes=(scope,), now=NOW)
        keys[scope] = {"Authorization": f"Bearer {secret}"}
    with (
        ThreadServer(create_app(ws, FixedClock(NOW))) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client,
    ):
        yield Api(client, ws, keys)


@pytest.fixture
def api(ws: Workspace) -> Iterator[Api]:
    """On each backend in turn."""
    yield from serve(ws)


@pytest.fixture
def own_api(workspace: Workspace) -> Iterator[Api]:
    """On DuckDB, a server of its own (for requests that change the workspace)."""
    yield from serve(workspace)


@pytest.fixture(scope="module")
def duck_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """On DuckDB, one server for the module (for requests that store nothing)."""
    ws = Workspace.init(tmp_path_factory.mktemp("wrong") / "ws", name="wrong")
    yield from serve(ws)
    ws.close()


def refused(response: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    """The error of ``response``, checked to be ``status`` naming ``field``."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["status"], error["field"]) == (status, field), error
    return error


def profile_id(api: Api, user: str) -> str:
    rows = api.ws.store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'user_id' AND value = ?", [user]
    )
    return str(rows[0][0])


# -- instants: the range every other instant of segmint keeps --------------------------------

OUT_OF_RANGE = ["0001-01-01T00:00:00Z", "1899-12-31T23:59:59Z", "9999-12-31T00:00:00Z"]


@pytest.mark.parametrize("as_of", OUT_OF_RANGE)
def test_a_profile_view_at_an_instant_out_of_range_is_refused(duck_api: Api, as_of: str) -> None:
    pid = profile_id(duck_api, "ada")
    r = duck_api.call("read", "GET", f"/v1/manage/profiles/{pid}", params={"as_of": as_of})
    assert "out of range" in refused(r, 422, "as_of")["message"]


@pytest.mark.parametrize("as_of", OUT_OF_RANGE)
def test_a_preview_at_an_instant_out_of_range_is_refused(duck_api: Api, as_of: str) -> None:
    body = {"rule": "orders >= 1", "as_of": as_of}
    r = duck_api.call("read", "POST", "/v1/segments/preview", json=body)
    assert "out of range" in refused(r, 422, "as_of")["message"]


def test_a_preview_takes_the_instants_reports_take(duck_api: Api) -> None:
    r = duck_api.call("read", "POST", "/v1/segments/preview",
                      json={"rule": "orders >= 1", "as_of": "-7d"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["as_of"] == "2026-02-22T12:00:00Z"


@pytest.mark.parametrize(
    ("timestamp", "says"),
    [
        ("0001-01-01T00:00:00Z", "between 1900-01-01"),
        ("1899-12-31T00:00:00Z", "between 1900-01-01"),
        (12345, "valid string"),  # was read as seconds since 1970
        ("soon", "not ISO 8601"),
    ],
)
def test_a_consent_dated_outside_the_supported_range_is_refused(
    duck_api: Api, timestamp: str | int, says: str
) -> None:
    before = duck_api.ws.store.fetchall("SELECT count(*) FROM consents")
    body = {"userId": "bob", "status": "granted", "timestamp": timestamp}
    error = refused(duck_api.call("write", "POST", "/v1/consent", json=body), 422, "timestamp")
    assert says in error["message"]
    assert duck_api.ws.store.fetchall("SELECT count(*) FROM consents") == before


# -- NUL: PostgreSQL cannot hold it (a 500), DuckDB kept it in addresses nobody can type ------

NUL_REQUESTS: list[tuple[str, str, str, dict[str, Any] | None, str]] = [
    ("read", "GET", "/v1/profiles/a%00b/segments", None, "profile_id"),
    ("read", "GET", "/v1/manage/profiles?q=a%00b", None, "q"),
    ("read", "GET", "/v1/manage/profiles/a%00b", None, "id"),
    ("read", "GET", "/v1/manage/segments/a%00b", None, "name"),
    ("read", "GET", "/v1/reports/experiments/a%00b", None, "name"),
    ("read", "GET", "/v1/reports/kpis?by=segment&churn_to=a%00b", None, "churn_to"),
    ("read", "POST", "/v1/segments/preview", {"rule": "first_name = 'a\x00b'"}, "rule"),
    ("read", "POST", "/v1/segments/preview", {"rule": "performed('a\x00b')"}, "rule"),
    ("admin", "POST", "/v1/privacy/erase", {"person": "a\x00b"}, "person"),
    ("admin", "POST", "/v1/privacy/export", {"person": "ada\x00"}, "person"),
    ("admin", "POST", "/v1/manage/segments", {"name": "x", "rule": "first_name = '\x00'"}, "rule"),
    ("admin", "POST", "/v1/manage/traits",
     {"name": "t", "definition": {"count": "events", "event": "E\x00"}}, "definition.event"),
    ("write", "POST", "/v1/consent", {"userId": "ada", "status": "granted", "source": "a\x00b"},
     "source"),
    ("write", "POST", "/v1/consent", {"email": "a\x00b@example.com", "status": "granted"},
     "email"),
    ("write", "POST", "/v1/suppressions", {"address": "x\x00@example.com"}, "address"),
    ("write", "POST", "/v1/suppressions", {"address": "x@example.com", "source": "\x00"},
     "source"),
]  # fmt: skip


def test_a_nul_character_anywhere_is_refused_naming_where(api: Api) -> None:
    tables = ("consents", "suppressions")
    before = [api.ws.store.fetchall(f"SELECT count(*) FROM {t}") for t in tables]
    yaml = (api.ws.path / "segmint.yaml").read_text()
    for scope, method, path, body, field in NUL_REQUESTS:
        r = api.call(scope, method, path, json=body)
        assert "NUL" in refused(r, 422, field)["message"], (path, body)
    assert [api.ws.store.fetchall(f"SELECT count(*) FROM {t}") for t in tables] == before
    assert (api.ws.path / "segmint.yaml").read_text() == yaml
    # The server keeps serving, and a plain request still works.
    r = api.call("read", "GET", f"/v1/profiles/{profile_id(api, 'ada')}/segments")
    assert r.status_code == 200, r.text


# -- what FastAPI refuses before a route runs names the field as the routes do ----------------

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("scope", "method", "path", "content", "field", "says"),
    [
        ("read", "POST", "/v1/manage/segments/validate", b'{"name": ', "body", "not valid JSON"),
        ("write", "POST", "/v1/consent", b"{x}", "body", "not valid JSON"),
        ("write", "POST", "/v1/consent", b"[1, 2]", "body", "JSON object"),
        ("admin", "POST", "/v1/privacy/erase", b"", "body", "required"),
        ("admin", "POST", "/v1/privacy/export", b'"ada"', "body", "JSON object"),
        ("read", "GET", "/v1/profiles/ada/segments?by=nickname", None, "by", "user_id"),
        ("read", "GET", "/v1/manage/profiles", None, "q", "required"),
        ("read", "GET", "/v1/manage/widgets", None, "kind", "traits"),
        ("admin", "POST", "/v1/manage/segments", b'{"name": "x", "tags": ["a", 5]}', "tags[1]",
         "string"),
    ],
)  # fmt: skip
def test_a_request_fastapi_refuses_names_its_field_as_the_routes_do(
    duck_api: Api,
    scope: str,
    method: str,
    path: str,
    content: bytes | None,
    field: str,
    says: str,
) -> None:
    r = duck_api.call(scope, method, path, content=content, headers=JSON)
    error = refused(r, 422, field)
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(f"{field}: ") and says in error["message"], error


# -- the rest: a 500, a silent clamp, a field misnamed --------------------------------------


@pytest.mark.parametrize("address", ["@@@", "ann@", "@example.com", "ann@@example.com"])
def test_suppressing_what_is_no_address_is_a_422_not_a_500(duck_api: Api, address: str) -> None:
    before = duck_api.ws.store.fetchall("SELECT count(*) FROM suppressions")
    r = duck_api.call("write", "POST", "/v1/suppressions", json={"address": address})
    assert "not an email address" in refused(r, 422, "address")["message"]
    assert duck_api.ws.store.fetchall("SELECT count(*) FROM suppressions") == before


@pytest.mark.parametrize("members", [-1, 1001, 10**30])
def test_a_member_count_out_of_range_is_refused_not_clamped(duck_api: Api, members: int) -> None:
    r = duck_api.call("read", "GET", "/v1/manage/segments/vip", params={"members": members})
    assert "members: " in refused(r, 422, "members")["message"]
    r = duck_api.call("read", "GET", "/v1/manage/segments/vip", params={"members": 1000})
    assert r.status_code == 200, r.text


def test_an_empty_tree_in_a_preview_is_named_as_the_tree(duck_api: Api) -> None:
    r = duck_api.call("read", "POST", "/v1/segments/preview", json={"tree": {}})
    assert refused(r, 422, "tree")["code"] == "invalid_rule"


# -- a part of a request that would be ignored is refused, not dropped ----------------------

TREE = {"type": "compare", "op": ">", "left": {"type": "trait", "name": "orders"},
        "right": {"type": "literal", "value": 5}}  # fmt: skip
IGNORED: list[tuple[str, str, str, dict[str, Any], str, str]] = [
    ("read", "POST", "/v1/segments/preview", {"rule": "orders > 1", "tree": TREE}, "tree",
     "not both"),
    ("read", "POST", "/v1/manage/segments/validate",
     {"name": "two", "rule": "orders > 1", "tree": TREE}, "tree", "not both"),
    ("admin", "POST", "/v1/manage/segments", {"name": "two", "rule": "orders > 1", "tree": TREE},
     "tree", "not both"),
    ("admin", "PUT", "/v1/manage/segments/vip", {"name": "big", "rule": "lifetime_value > 1"},
     "name", "cannot be renamed"),
    ("admin", "PUT", "/v1/manage/traits/orders",
     {"name": "orderz", "definition": {"count": "events", "event": "Order Completed"}}, "name",
     "cannot be renamed"),
    ("admin", "POST", "/v1/manage/traits",
     {"name": "t", "definition": {"from": "identify"}, "source": "Hi"}, "source",
     "only templates"),
    ("read", "POST", "/v1/manage/campaigns/validate", {"name": "c", "source": "Hi"}, "source",
     "only templates"),
    ("admin", "POST", "/v1/manage/templates",
     {"name": "t", "source": "Hi", "definition": {"subject": "x"}}, "definition",
     "a template is its text"),
]  # fmt: skip


@pytest.mark.parametrize(("scope", "method", "path", "body", "field", "says"), IGNORED)
def test_a_part_that_would_be_ignored_is_refused(
    duck_api: Api,
    scope: str,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
    says: str,
) -> None:
    """The tree won over the rule, a body's new name and a trait's `source` were dropped: the
    client was told 200 and its edit was not what it asked for."""
    yaml = (duck_api.ws.path / "segmint.yaml").read_text()
    error = refused(duck_api.call(scope, method, path, json=body), 422, field)
    assert error["code"] == "invalid_request" and says in error["message"], error
    assert (duck_api.ws.path / "segmint.yaml").read_text() == yaml
    assert not (duck_api.ws.path / "templates" / "t.html").exists()


def test_a_body_naming_the_entry_of_its_path_is_fine(duck_api: Api) -> None:
    body = {"name": "orders", "definition": {"count": "events", "event": "Order Completed"}}
    r = duck_api.call("admin", "PUT", "/v1/manage/traits/orders", json=body)
    assert r.status_code == 200, r.text


# -- an archived segment is there, set aside: not unknown, and not a free name ---------------


def test_an_archived_segment_is_named_as_archived_and_its_name_is_not_taken(own_api: Api) -> None:
    """Creating a segment under an archived one's name replaced it (rule and all, its history
    now under another rule) and un-archived it; updating or archiving it said 'unknown'."""
    archived = own_api.call("admin", "POST", "/v1/manage/segments/high_value/archive")
    assert archived.status_code == 200, archived.text
    yaml = (own_api.ws.path / "segmint.yaml").read_text()
    attempts = [
        ("POST", "/v1/manage/segments", {"name": "high_value", "rule": "orders > 1"}),
        ("PUT", "/v1/manage/segments/high_value", {"rule": "orders > 1"}),
        ("POST", "/v1/manage/segments/high_value/archive", None),
    ]
    for method, path, body in attempts:
        error = refused(own_api.call("admin", method, path, json=body), 409, "name")
        assert "'high_value' is archived" in error["message"], error
        assert "archived: false" in error["message"], error
    assert (own_api.ws.path / "segmint.yaml").read_text() == yaml
    shown = own_api.call("read", "GET", "/v1/manage/segments/high_value")
    assert shown.status_code == 200 and shown.json()["archived"] is True


# -- a body over the limit is refused before it is read, key or no key ----------------------


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"userId": "ada", "status": "granted", "source": "'
    for _ in range(size // 65536):
        yield b"s" * 65536
    yield b'"}'


@pytest.mark.parametrize("scope", [None, "write"])
@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_a_mebibyte_is_a_413_whoever_sends_it(
    duck_api: Api, scope: str | None, chunked: bool
) -> None:
    """The management, consent and privacy routes read and parsed a body of any size before
    they checked the key (200 MB took a second and a gigabyte of memory)."""
    before = duck_api.ws.store.fetchall("SELECT count(*) FROM consents")
    size = 3 * 1024 * 1024
    content: Any = _chunks(size) if chunked else b"".join(_chunks(size))
    headers = {**JSON, **(duck_api.keys[scope] if scope else {})}
    for path in ("/v1/consent", "/v1/manage/segments/validate", "/v1/privacy/erase"):
        r = duck_api.client.post(path, content=content, headers=headers)
        error = refused(r, 413, "body")
        assert error["code"] == "payload_too_large" and "1048576" in error["message"], error
        content = _chunks(size) if chunked else content
    assert duck_api.ws.store.fetchall("SELECT count(*) FROM consents") == before


def test_routes_with_limits_of_their_own_keep_them(duck_api: Api) -> None:
    from segmint.intake.payloads import MAX_BATCH_BYTES

    big = b" " * (2 * 1024 * 1024)
    r = duck_api.client.post("/v1/batch", content=big, headers=duck_api.keys["write"])
    assert f"over the {MAX_BATCH_BYTES} byte limit" in refused(r, 413, "body")["message"]
    shop = duck_api.client.post("/webhooks/shopify/orders", content=big)  # up to 4 MB read
    assert shop.status_code == 401, shop.text


# -- an erased person is named as erased, and their address is not kept again ---------------


def test_consent_for_an_erased_person_says_so_and_keeps_no_address(own_api: Api) -> None:
    """POST /v1/consent with an erased person's email was kept as 'an address no profile has
    yet' (the address stored again, in the clear); `segmint consent set` refused it."""
    erased = own_api.call("admin", "POST", "/v1/privacy/erase", json={"person": "ada"})
    assert erased.status_code == 200, erased.text
    for field, value in (("email", "ada@example.com"), ("userId", "ada")):
        body = {field: value, "status": "granted", "topic": "offers"}
        error = refused(own_api.call("write", "POST", "/v1/consent", json=body), 404, field)
        assert "was erased on" in error["message"] and "(receipt er_" in error["message"]
    assert own_api.ws.store.fetchall("SELECT count(*) FROM address_consents") == [(0,)]
    segments = own_api.call("read", "GET", "/v1/profiles/ada@example.com/segments")
    assert "was erased on" in refused(segments, 404, "profile_id")["message"]
    other = {"email": "new.person@example.com", "status": "granted"}
    kept = own_api.call("write", "POST", "/v1/consent", json=other)
    assert kept.status_code == 200 and kept.json()["address"] == "new.person@example.com"


@pytest.mark.parametrize(
    ("timestamp", "says"),
    [
        ("0000-10-01T00:00:00Z", "is out of range: '0000-10-01T00:00:00Z' (year 0 is out of"),
        ("2026-02-30T00:00:00Z", "day is out of range for month"),
        ("2026-10-01T25:00:00Z", "hour must be in 0..23"),
        ("next tuesday", "is not an ISO 8601 date-time"),
    ],
)
def test_an_event_time_that_cannot_be_says_why(duck_api: Api, timestamp: str, says: str) -> None:
    """Year 0 and February 30 were 'not an ISO 8601 date-time', which they are in form; the
    reason went unsaid."""
    body = {"userId": "ada", "event": "E", "timestamp": timestamp}
    r = duck_api.call("write", "POST", "/v1/track", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["field"] == "timestamp" and says in error["message"], error


# -- a save the loader passes but segments cannot be ordered by is refused, not written ------


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"name": "own_parent", "rule": "orders > 1", "parent": "own_parent"},
         "segments.own_parent", "itself"),
        ({"name": "in_group", "rule": "in_segment('vip')", "group": "lifecycle"},
         "segments.in_group", "same group"),
        ({"name": "second_default", "default": True, "group": "lifecycle"},
         "segments.second_default.default", "already has default"),  # the loader's, as before
    ],
)  # fmt: skip
def test_segments_that_cannot_be_ordered_are_refused_not_saved(
    own_api: Api, body: dict[str, Any], field: str, says: str
) -> None:
    """A segment its own parent was written to segmint.yaml (201 or 500): from then on every
    read of the segments answered 500, and `segmint refresh` failed, until edited by hand."""
    yaml = (own_api.ws.path / "segmint.yaml").read_text()
    checked = own_api.call("read", "POST", "/v1/manage/segments/validate", json=body)
    assert checked.status_code == 200 and checked.json()["valid"] is False, checked.text
    assert says in checked.json()["problems"][0]["message"]
    r = own_api.call("admin", "POST", "/v1/manage/segments", json=body)
    error = refused(r, 422, field)
    assert error["code"] == "invalid_definition" and says in error["message"], error
    assert (own_api.ws.path / "segmint.yaml").read_text() == yaml
    assert own_api.call("read", "GET", "/v1/manage/segments").status_code == 200
