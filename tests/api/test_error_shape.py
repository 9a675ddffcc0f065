"""Every error the API gives has one shape (datasette ``test_error_shape.py`` style)."""

from __future__ import annotations

import orjson
import pytest

from segmint.api.errors import error_body

from .conftest import Live

TRACK = orjson.dumps({"userId": "u", "event": "E"})

CASES = [
    ("no key", "POST", "/v1/track", TRACK, False, 401),
    ("bad json", "POST", "/v1/track", b"{", True, 400),
    ("bad field", "POST", "/v1/track", b'{"userId": []}', True, 400),
    ("too large", "POST", "/v1/track", b" " * 40_000, True, 413),
    ("not found", "GET", "/v2/nothing", b"", False, 404),
    ("wrong method", "GET", "/v1/track", b"", False, 405),
]


@pytest.mark.parametrize(("name", "method", "path", "content", "auth", "status"), CASES)
def test_every_error_has_the_one_shape(
    module_live: Live, name: str, method: str, path: str, content: bytes, auth: bool, status: int
) -> None:
    with module_live.client() as c:
        credentials = (module_live.write_key, "") if auth else None
        response = c.request(method, path, content=content or None, auth=credentials)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert list(error) == ["status", "code", "message", "field"]
    assert error["status"] == response.status_code
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["field"] is None or isinstance(error["field"], str)


def test_the_shape_itself() -> None:
    got = error_body(400, "invalid_payload", "batch[0].userId: must be a string", "batch[0].userId")
    assert got == {
        "error": {
            "status": 400,
            "code": "invalid_payload",
            "message": "batch[0].userId: must be a string",
            "field": "batch[0].userId",
        }
    }
