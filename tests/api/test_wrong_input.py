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

    def call(self, scope: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, headers=self.keys[scope], **kwargs)


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
