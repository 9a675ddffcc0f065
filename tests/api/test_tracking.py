from __future__ import annotations

import gzip
from datetime import timedelta
from typing import Any

import orjson
import pytest

from .conftest import NOW, Live


def body(payload: Any) -> bytes:
    return orjson.dumps(payload)


@pytest.mark.parametrize(
    ("call", "payload", "stored"),
    [
        ("identify", {"userId": "u1", "traits": {"email": "a@b.c"}}, ("identify", None)),
        ("track", {"userId": "u1", "event": "Order Completed"}, ("track", "Order Completed")),
        ("page", {"anonymousId": "a1", "name": "Home"}, ("page", "Home")),
        ("screen", {"anonymousId": "a1", "name": "Cart"}, ("screen", "Cart")),
        ("group", {"userId": "u1", "groupId": "g1", "traits": {"plan": "pro"}}, ("group", None)),
        ("alias", {"userId": "u1", "previousId": "a1"}, ("alias", None)),
    ],
)
def test_each_call_is_stored(
    live: Live, call: str, payload: dict[str, Any], stored: tuple[Any, ...]
) -> None:
    with live.client(auth=(live.write_key, "")) as c:
        r = c.post(f"/v1/{call}", content=body(payload | {"messageId": "m1"}))
    assert (r.status_code, r.json()) == (200, {"success": True})
    rows = live.workspace.store.fetchall("SELECT type, event, source FROM events")
    assert rows == [(*stored, "web")]


def test_batch_with_write_key_in_body_and_gzip(live: Live) -> None:
    payload = {
        "writeKey": live.write_key,
        "sentAt": (NOW + timedelta(hours=1)).isoformat(),  # the device clock is an hour fast
        "context": {"library": {"name": "test"}},
        "batch": [
            {"type": "track", "userId": "u1", "event": "A", "messageId": "b1",
             "timestamp": (NOW + timedelta(minutes=50)).isoformat()},
            {"type": "identify", "userId": "u1", "messageId": "b2", "traits": {"x": 1}},
        ],
    }  # fmt: skip
    with live.client() as c:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        r = c.post("/v1/batch", content=gzip.compress(body(payload)), headers=headers)
    assert r.status_code == 200, r.text
    rows = live.workspace.store.fetchall(
        "SELECT message_id, timestamp, context FROM events ORDER BY message_id"
    )
    assert rows[0][1] == (NOW - timedelta(minutes=10)).replace(tzinfo=None)  # skew corrected
    assert rows[1][1] == NOW.replace(tzinfo=None)  # no timestamp: receivedAt
    assert orjson.loads(rows[0][2]) == {"library": {"name": "test"}}
    assert live.write_key not in str(live.workspace.store.fetchall("SELECT * FROM events"))


def test_retries_are_stored_once(live: Live) -> None:
    payload = {"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "same"}]}
    with live.client(auth=(live.write_key, "")) as c:
        for _ in range(3):
            assert c.post("/v1/batch", content=body(payload)).status_code == 200
    assert live.count() == 1


def test_keys_and_scopes(live: Live) -> None:
    msg = body({"userId": "u", "event": "E"})
    with live.client() as c:
        assert c.post("/v1/track", content=msg).status_code == 401
        assert c.post("/v1/track", content=msg, auth=("nope", "")).status_code == 401
        r = c.post("/v1/track", content=msg, auth=(live.read_key, ""))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = c.post("/v1/track", content=msg, headers={"Authorization": "Basic !!!"})
        assert r.status_code == 401
    assert live.count() == 0


def test_revoked_key_is_refused(live: Live) -> None:
    from segmint.intake.keys import revoke_key

    msg = body({"userId": "u", "event": "E"})
    with live.client(auth=(live.write_key, "")) as c:
        assert c.post("/v1/track", content=msg).status_code == 200
        revoke_key(live.workspace.store, "web", now=NOW)
        live.app.state.keys.forget()
        r = c.post("/v1/track", content=msg)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_require_read_guards_other_routers(workspace: Any) -> None:
    from fastapi import APIRouter, Depends

    from segmint.api import create_app, require_read, require_write
    from segmint.clock import FixedClock

    from .conftest import serve

    router = APIRouter()

    @router.get("/v1/things", dependencies=[Depends(require_read)])
    async def things() -> dict[str, int]:
        return {"things": 1}

    @router.post("/v1/things", dependencies=[Depends(require_write)])
    async def make() -> dict[str, int]:
        return {"made": 1}

    app = create_app(workspace, FixedClock(NOW))
    app.include_router(router)
    for live in serve(workspace, FixedClock(NOW), app):
        with live.client() as c:
            assert c.get("/v1/things", auth=(live.write_key, "")).status_code == 403
            assert c.get("/v1/things", auth=(live.read_key, "")).json() == {"things": 1}
            bearer = {"Authorization": f"Bearer {live.read_key}"}
            assert c.get("/v1/things", headers=bearer).status_code == 200
            assert c.post("/v1/things", auth=(live.read_key, "")).status_code == 403
            assert c.post("/v1/things", auth=(live.write_key, "")).status_code == 200


def test_extra_routers_are_included(workspace: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from fastapi import APIRouter

    from segmint.api import app as app_module
    from segmint.clock import FixedClock

    from .conftest import serve

    module = types.ModuleType("segmint_test_extra_router")
    module.router = APIRouter()  # type: ignore[attr-defined]

    @module.router.get("/extra")  # type: ignore[attr-defined]
    async def extra() -> dict[str, bool]:
        return {"extra": True}

    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(app_module, "EXTRA_ROUTERS", [module.__name__])
    app = app_module.create_app(workspace, FixedClock(NOW))
    for live in serve(workspace, FixedClock(NOW), app):
        with live.client() as c:
            assert c.get("/extra").json() == {"extra": True}


def test_plan_violations_are_accepted_into_quarantine(workspace: Any) -> None:
    from segmint.clock import FixedClock
    from segmint.workspace import Workspace

    from .conftest import serve

    data = workspace.definition.model_dump(by_alias=True)
    definition = workspace.definition.model_validate(
        data | {"tracking_plan": {"allow_unplanned_events": False}}
    )
    planned = Workspace(path=workspace.path, definition=definition, _store=workspace.store)
    for live in serve(planned, FixedClock(NOW)):
        with live.client(auth=(live.write_key, "")) as c:
            r = c.post("/v1/track", content=body({"userId": "u", "event": "Nope"}))
        assert (r.status_code, r.json()) == (200, {"success": True})
        assert live.count() == 0
        rows = live.workspace.store.fetchall("SELECT source, field FROM quarantine")
        assert rows == [("web", "event")]


def test_an_unavailable_store_answers_503(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    from segmint.store import StoreUnavailable

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("lost PostgreSQL")

    monkeypatch.setattr(live.workspace.store, "append_events", down)
    with live.client(auth=(live.write_key, "")) as c:
        r = c.post("/v1/track", content=body({"userId": "u", "event": "E"}))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "unavailable"
        monkeypatch.undo()
        assert c.post("/v1/track", content=body({"userId": "u", "event": "E"})).status_code == 200
    assert live.count() == 1


@pytest.mark.postgres
def test_the_server_runs_on_postgresql(workspace: Any, pg_store: Any) -> None:
    from segmint.clock import FixedClock
    from segmint.workspace import Workspace

    from .conftest import serve

    on_pg = Workspace(path=workspace.path, definition=workspace.definition, _store=pg_store)
    for live in serve(on_pg, FixedClock(NOW)):
        payload = {"batch": [
            {"type": "identify", "anonymousId": "a", "userId": "u", "messageId": "1",
             "traits": {"email": "x@y.z", "bio": "tab\there"}},
            {"type": "track", "anonymousId": "a", "event": "E", "messageId": "2"},
        ]}  # fmt: skip
        with live.client(auth=(live.write_key, "")) as c:
            assert c.post("/v1/batch", content=body(payload)).status_code == 200
            assert c.post("/v1/batch", content=body(payload)).status_code == 200
        rows = pg_store.fetchall("SELECT count(*), count(DISTINCT profile_id) FROM events")
        assert rows == [(2, 1)]
