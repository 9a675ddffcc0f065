"""The erase and export endpoints: admin keys only, audited under the key's id."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from segmint.api import create_app
from segmint.clock import FixedClock
from segmint.intake.keys import create_key
from segmint.privacy import audit
from segmint.workspace import Workspace

from .conftest import T0

# the API tests' real uvicorn server in a thread (tests/api has no package to import from)
_spec = importlib.util.spec_from_file_location(
    "api_server", Path(__file__).parents[1] / "api" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_server = sys.modules.setdefault("api_server", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_server)


@pytest.fixture
def client(sealed_ws: Workspace) -> Iterator[tuple[httpx.Client, dict[str, str], str]]:
    _, read = create_key(sealed_ws.store, "dash", scopes=("read",), now=T0)
    made, admin = create_key(sealed_ws.store, "dpo", scopes=("admin",), now=T0)
    with (
        _server.ThreadServer(create_app(sealed_ws, FixedClock(T0))) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http,
    ):
        yield http, {"read": read, "admin": admin}, made.key_id


def test_erase_needs_an_admin_key_and_is_audited(
    sealed_ws: Workspace, client: tuple[httpx.Client, dict[str, str], str]
) -> None:
    http, keys, admin_id = client
    body = {"person": "ada@example.com"}
    assert http.post("/v1/privacy/erase", json=body).status_code == 401
    refused = http.post("/v1/privacy/erase", json=body, auth=(keys["read"], ""))
    assert refused.status_code == 403 and "admin" in refused.json()["error"]["message"]
    exported = http.post("/v1/privacy/export", json=body, auth=(keys["admin"], ""))
    assert exported.status_code == 200
    assert exported.json()["manifest"]["sections"]["events"]["rows"] == 5
    done = http.post("/v1/privacy/erase", json=body, auth=(keys["admin"], ""))
    assert done.status_code == 200, done.text
    assert done.json()["keys_destroyed"] == 2
    gone = http.post("/v1/privacy/erase", json=body, auth=(keys["admin"], ""))
    assert gone.status_code == 404 and gone.json()["error"]["field"] == "person"
    actions = [(e.action, e.actor) for e in audit.entries(sealed_ws.store)]
    mine = f"api:{admin_id}"
    assert ("privacy.erase", mine) in actions and ("privacy.export", mine) in actions
    assert actions.count(("api.admin", mine)) == 3
    audit.verify(sealed_ws.store)
