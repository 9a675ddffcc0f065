"""The console's pages over HTTP: login, roles, CSRF, escaping, and what each page shows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from segmint.api import create_app
from segmint.clock import FixedClock
from segmint.config.loader import load_workspace_def
from segmint.intake.keys import create_key, revoke_key
from segmint.workspace import Workspace

from .conftest import ThreadServer
from .test_manage import NOW, populate


@dataclass
class Console:
    url: str
    ws: Workspace
    keys: dict[str, str]
    app: FastAPI
    clients: list[httpx.Client] = dataclass_field(default_factory=list)

    def browser(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        self.clients.append(client)
        return client

    def login(self, role: str) -> tuple[httpx.Client, str]:
        """A client logged in with the ``role`` key, and its session's CSRF token."""
        c = self.browser()
        page = c.get("/ui/login")
        token = field(page.text, "csrf")
        r = c.post(
            "/ui/login", data={"csrf": token, "key": self.keys[role], "next": "/ui/segments"}
        )
        assert r.status_code == 303, r.text
        segments = c.get("/ui/segments")
        return c, meta_csrf(segments.text)


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, html
    return found.group(1)


def meta_csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)"', html)
    assert found
    return found.group(1)


@pytest.fixture
def console(ws: Workspace) -> Iterator[Console]:
    populate(ws)
    keys = {}
    for role, scopes in (("read", ("read",)), ("admin", ("admin",)), ("write", ("write",))):
        keys[role] = create_key(ws.store, role, scopes=scopes, now=NOW)[1]
    app = create_app(ws, FixedClock(NOW))
    with ThreadServer(app) as server:
        found = Console(f"http://127.0.0.1:{server.port}", ws, keys, app)
        yield found
        for client in found.clients:
            client.close()


def test_pages_need_a_session(console: Console) -> None:
    with console.browser() as c:
        r = c.get("/ui/segments/vip")
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login?next=/ui/segments/vip"


@pytest.mark.parametrize(
    ("key", "csrf_ok", "status", "text"),
    [
        ("nope", True, 401, "unknown API key"),
        ("write", True, 403, "cannot read"),
        ("read", False, 403, "login form expired"),
    ],
)
def test_login_refusals(console: Console, key: str, csrf_ok: bool, status: int, text: str) -> None:
    with console.browser() as c:
        token = field(c.get("/ui/login").text, "csrf")
        secret = console.keys.get(key, key)
        r = c.post("/ui/login", data={"csrf": token if csrf_ok else "x", "key": secret})
        assert r.status_code == status and text in r.text
        assert "segmint_session" not in c.cookies


def test_no_open_redirect_after_login(console: Console) -> None:
    with console.browser() as c:
        token = field(c.get("/ui/login").text, "csrf")
        data = {"csrf": token, "key": console.keys["read"], "next": "//evil.example/ui/x"}
        r = c.post("/ui/login", data=data)
        assert r.headers["location"] == "/ui/segments"


def test_segments_list_segment_page_and_read_only_role(console: Console) -> None:
    c, _ = console.login("read")
    listing = c.get("/ui/segments").text
    assert re.search(r'data-segment="vip">.*?class="num size">6<', listing, re.S)
    assert "read-only" in listing and 'id="new-segment"' not in listing
    page = c.get("/ui/segments/vip")
    assert page.status_code == 200
    assert "lifetime_value &gt;= 1000" in page.text  # escaped
    assert page.text.count('<td class="enter">enter</td>') == 6
    assert "Archive" not in page.text
    assert c.get("/ui/segments/nope").status_code == 404


def test_csrf_and_roles_guard_every_change(console: Console) -> None:
    read, read_token = console.login("read")
    admin, token = console.login("admin")
    body = {"name": "big", "rule": "lifetime_value >= 2000"}
    assert admin.post("/ui/api/preview", json=body).status_code == 403  # no token
    assert admin.post("/ui/api/segments?create=true", json=body).status_code == 403
    h = {"X-CSRF-Token": read_token}
    denied = read.post("/ui/api/segments?create=true", json=body, headers=h)
    assert denied.status_code == 403 and "read-only" in denied.json()["error"]["message"]
    stolen = admin.post("/ui/api/segments?create=true", json=body, headers=h)
    assert stolen.status_code == 403  # another session's token
    assert admin.post("/ui/segments/high_value/archive", data={"csrf": "x"}).status_code == 403
    assert "high_value" in (console.ws.path / "segmint.yaml").read_text()
    ok = admin.post("/ui/api/segments?create=true", json=body, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200, ok.text
    assert (
        'big:\n    rule: "lifetime_value >= 2000"' in (console.ws.path / "segmint.yaml").read_text()
    )
    gone = admin.post("/ui/segments/high_value/archive", data={"csrf": token})
    assert gone.status_code == 303
    assert "high_value" in load_workspace_def(console.ws.path / "segmint.yaml").archived_segments


def test_preview_for_the_builder(console: Console) -> None:
    c, token = console.login("read")
    h = {"X-CSRF-Token": token}
    r = c.post("/ui/api/preview", json={"rule": "orders >= 8"}, headers=h)
    assert r.status_code == 200 and r.json()["size"] == 2
    bad = c.post("/ui/api/preview", json={"rule": "ordrs >= 8"}, headers=h)
    assert bad.status_code == 422 and "did you mean 'orders'" in bad.json()["error"]["message"]
    page = c.get("/ui/builder?segment=vip").text
    found = re.search(r'id="builder-config">(.*?)</script>', page, re.S)
    assert found and ">" not in found.group(1)  # \u003e: nothing can close the script
    config = json.loads(found.group(1))
    assert config["traits"]["lifetime_value"] == "number"
    assert config["segment"]["rule"] == "lifetime_value >= 1000"
    assert config["segment"]["tree"]["type"] == "compare"


def test_everything_shown_is_escaped(console: Console) -> None:
    admin, token = console.login("admin")
    evil = "<script>alert(1)</script>"
    body = {"name": "x1", "rule": "orders > 1", "description": evil}
    h = {"X-CSRF-Token": token}
    assert admin.post("/ui/api/segments?create=true", json=body, headers=h).status_code == 200
    for path in ("/ui/segments", "/ui/segments/x1", "/ui/builder?segment=x1"):
        page = admin.get(path)
        assert evil not in page.text, path
        assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "&lt;script&gt;" in admin.get("/ui/segments/x1").text
    assert "\\u003cscript\\u003e" in admin.get("/ui/builder?segment=x1").text
    found = admin.get("/ui/profiles", params={"q": evil})
    assert found.status_code == 404 and evil not in found.text


def test_profile_page_and_email_preview(console: Console) -> None:
    c, _ = console.login("read")
    r = c.get("/ui/profiles", params={"q": "u7@example.com"})
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    assert re.search(r'data-segment="vip">.*?class="member">yes<', page, re.S)
    assert "lifetime_value &gt;= 1000</code> = true" in page
    assert "Order Completed" in page
    pid = re.search(r'id="profile-id">([^<]+)<', page).group(1)  # type: ignore[union-attr]
    email = c.get(f"/ui/profiles/{pid}/email", params={"template": "lifecycle"})
    assert email.status_code == 200 and 'id="subject"' in email.text
    body = c.get(f"/ui/profiles/{pid}/email.html", params={"template": "lifecycle"})
    assert body.status_code == 200 and "sandbox" in body.headers["content-security-policy"]
    assert "u7" in body.text  # first_name
    missing = c.get(f"/ui/profiles/{pid}/email", params={"template": "nope"})
    assert missing.status_code == 422


def test_a_revoked_key_ends_its_sessions(console: Console) -> None:
    c, _ = console.login("read")
    assert c.get("/ui/segments").status_code == 200
    revoke_key(console.ws.store, "read", now=datetime(2026, 3, 2, tzinfo=UTC))
    console.app.state.keys.forget()  # what a revocation through this process does
    assert c.get("/ui/segments").status_code == 303


def test_sessions_survive_a_restart_and_a_forged_cookie_is_refused(console: Console) -> None:
    c, _ = console.login("read")
    cookie = c.cookies["segmint_session"]
    assert console.keys["read"] not in cookie  # the cookie holds the key's id, not the key
    secret = (console.ws.path / ".segmint" / "console-secret").read_text().strip()
    assert (console.ws.path / ".segmint" / "console-secret").stat().st_mode & 0o077 == 0
    again = create_app(console.ws, FixedClock(NOW))  # a restarted server: no memory shared
    with (
        ThreadServer(again) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", follow_redirects=False) as other,
    ):
        other.cookies.set("segmint_session", cookie)
        assert other.get("/ui/segments").status_code == 200
        payload, mac = cookie.rsplit(".", 1)
        forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
        other.cookies.set("segmint_session", forged)
        assert other.get("/ui/segments").status_code == 303
        # the session secret logs in as admin
        other.cookies.clear()
        token = field(other.get("/ui/login").text, "csrf")
        r = other.post("/ui/login", data={"csrf": token, "key": secret, "next": "/ui/segments"})
        assert r.status_code == 303
        assert "admin · session secret" in other.get("/ui/segments").text
    c.post("/ui/logout", data={"csrf": meta_csrf(c.get("/ui/segments").text)})
    with console.browser() as stale:  # a logged-out cookie replayed is refused
        stale.cookies.set("segmint_session", cookie)
        assert stale.get("/ui/segments").status_code == 303


def test_segments_list_draws_sizes_over_time_and_the_overlap(console: Console) -> None:
    c, _ = console.login("read")
    page = c.get("/ui/segments").text
    vip = re.search(r'data-segment="vip">.*?<svg class="spark"[^>]*aria-label="([^"]*)"', page,
                    re.S)  # fmt: skip
    assert vip and vip.group(1).endswith("highest 6")  # six entries on the refresh's day
    assert 'id="overlap"' in page
    pair = re.search(r'data-pair="high_value\|vip"><title>([^<]*)</title>', page)
    shared = console.ws.store.fetchall(
        "SELECT count(*) FROM memberships a JOIN memberships b ON a.profile_id = b.profile_id "
        "WHERE a.segment = 'high_value' AND b.segment = 'vip'"
    )[0][0]
    assert pair and f"{shared} shared" in pair.group(1)


def test_dashboards_and_report_endpoints(console: Console) -> None:
    c, _ = console.login("read")
    page = c.get("/ui/dashboards")
    assert page.status_code == 200
    assert 'id="campaigns"' in page.text and 'id="journeys"' in page.text
    assert 'data-journey="abandoned_cart"' in page.text
    h = {"Authorization": f"Bearer {console.keys['read']}"}
    kpis = httpx.get(f"{console.url}/v1/reports/kpis", params={"by": "segment"}, headers=h)
    assert kpis.status_code == 200
    sizes = {r["segment"]: r["size_end"] for r in kpis.json()["rows"] if "size_end" in r}
    assert sizes["vip"] == 6
    bad = httpx.get(f"{console.url}/v1/reports/kpis", params={"by": "segmnt"}, headers=h)
    assert bad.status_code == 422 and "did you mean 'segment'" in bad.json()["error"]["message"]
    when = httpx.get(f"{console.url}/v1/reports/kpis", params={"to": "yesterday"}, headers=h)
    assert when.status_code == 422 and when.json()["error"]["field"] == "to"
    listed = httpx.get(f"{console.url}/v1/reports/experiments", headers=h)
    assert listed.status_code == 200  # the example's journey step experiment
    assert [e["experiment"] for e in listed.json()["experiments"]] == ["win_back.miss_you"]
    missing = httpx.get(f"{console.url}/v1/reports/experiments/nope", headers=h)
    assert missing.status_code == 404
    assert httpx.get(f"{console.url}/v1/reports/kpis").status_code == 401


def test_hostile_trait_values_and_names_are_escaped(console: Console) -> None:
    from segmint.intake.pipeline import Intake

    evil = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    Intake(console.ws, FixedClock(NOW)).submit(
        [{"type": "identify", "userId": "u7", "messageId": "evil", "traits": {"first_name": evil},
          "timestamp": NOW.isoformat()}], source="test"
    )  # fmt: skip
    admin, token = console.login("admin")
    body = {"name": "evil_seg", "rule": "orders > 1", "description": evil, "tags": [evil]}
    saved = admin.post("/ui/api/segments?create=true", json=body, headers={"X-CSRF-Token": token})
    assert saved.status_code == 200
    found = admin.get("/ui/profiles", params={"q": "u7"})
    for page in (admin.get(found.headers["location"]), admin.get("/ui/segments"),
                 admin.get("/ui/dashboards")):  # fmt: skip
        assert "<img src=x" not in page.text and "<script>alert" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in admin.get(found.headers["location"]).text


def test_the_dashboards_draw_the_global_holdout_on_every_campaign(console: Console) -> None:
    """Listed by /v1/reports/experiments since it is an experiment of every listing, the
    global holdout reads 'on every campaign' (not 'on None')."""
    defn = console.ws.definition
    measure = defn.measure.model_copy(update={"global_holdout_percent": 5.0})
    console.ws.replace_definition(defn.model_copy(update={"measure": measure}))
    c, _ = console.login("read")
    page = c.get("/ui/dashboards").text
    assert 'data-experiment="global_holdout"' in page
    assert "on every campaign" in page and "on None" not in page
