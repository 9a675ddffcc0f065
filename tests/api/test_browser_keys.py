"""Public keys: origins given at creation, the per-IP rate, consent, and the keys CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.api.public import BURST_SECONDS, IpRateLimiter, refuses
from segmint.intake.errors import ApiKeyError
from segmint.intake.keys import DEFAULT_IP_RATE, create_key, normalize_origin, verify_key
from segmint.workspace import Workspace

from .conftest import NOW, Live

SHOP = "https://shop.example"


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_public_key_keeps_its_origins_rate_and_category(ws: Workspace) -> None:
    key, secret = create_key(ws.store, "site", now=NOW, origins=(SHOP + "/", "HTTP://Local:80"),
                             consent_category="Analytics")  # fmt: skip
    found = verify_key(ws.store, secret)
    assert found == key and found.public
    assert found.origins == (SHOP, "http://local")
    assert found.ip_rate == DEFAULT_IP_RATE and found.consent_category == "Analytics"
    server, secret = create_key(ws.store, "backend", now=NOW)
    assert not verify_key(ws.store, secret).public and server.ip_rate == 0


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("https://Shop.Example", "https://shop.example"),
        ("https://shop.example:443/", "https://shop.example"),
        ("http://shop.example:80", "http://shop.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("  https://shop.example  ", "https://shop.example"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("https://[2001:DB8::1]:443", "https://[2001:db8::1]"),
    ],
)
def test_origins_are_written_as_browsers_send_them(given_: str, expected: str) -> None:
    assert normalize_origin(given_) == expected


@pytest.mark.parametrize(
    ("given_", "message"),
    [
        ("shop.example", "has no scheme: did you mean 'https://shop.example'?"),
        ("htps://shop.example", "has scheme 'htps': did you mean 'https'?"),
        ("ftp://shop.example", "has scheme 'ftp'"),
        ("https://shop.example/cart", "has a path: did you mean 'https://shop.example'?"),
        ("https://shop.example?x=1", "is not an origin"),
        ("https://user@shop.example", "is not an origin"),
        ("https://", "is not an origin"),
        ("https://shop.example:99999", "invalid port"),
        ("*", "list each site"),
        ("https://*.shop.example", "list each site"),
        ("null", "list each site"),
    ],
)
def test_bad_origins_are_refused_with_what_is_accepted(given_: str, message: str) -> None:
    with pytest.raises(ApiKeyError, match="origin") as caught:
        normalize_origin(given_)
    assert message in str(caught.value)


@given(st.sampled_from(["http", "https"]),
       st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){0,2}", fullmatch=True),
       st.one_of(st.none(), st.integers(1, 65535)))  # fmt: skip
def test_normalizing_an_origin_twice_changes_nothing(
    scheme: str, host: str, port: int | None
) -> None:
    text = f"{scheme}://{host.upper()}" + (f":{port}" if port else "")
    once = normalize_origin(text)
    assert normalize_origin(once) == once
    assert once.startswith(f"{scheme}://{host}")


def test_public_keys_only_write(ws: Workspace) -> None:
    with pytest.raises(ApiKeyError, match="may only write"):
        create_key(ws.store, "site", scopes=("write", "read"), now=NOW, origins=(SHOP,))
    with pytest.raises(ApiKeyError, match="public keys only"):
        create_key(ws.store, "backend", now=NOW, ip_rate=5)
    with pytest.raises(ApiKeyError, match="requests/s"):
        create_key(ws.store, "site", now=NOW, origins=(SHOP,), ip_rate=-1)
    with pytest.raises(ApiKeyError, match="consent category needs a name"):
        create_key(ws.store, "site", now=NOW, origins=(SHOP,), consent_category=" ")
    assert ws.store.fetchall("SELECT count(*) FROM api_keys") == [(0,)]


def test_the_rate_limit_applies_per_ip_to_public_keys_only(live: Live) -> None:
    ticks = Ticks()
    live.app.state.ip_limiter = IpRateLimiter(clock=ticks)
    _, site = create_key(live.workspace.store, "site", now=NOW, origins=(SHOP,), ip_rate=2)
    burst = int(2 * BURST_SECONDS)

    sent = iter(range(1000))

    def send(key: str, n: int) -> list[int]:
        with live.client(auth=(key, "")) as c:
            return [c.post("/v1/t", json={"anonymousId": "a", "event": "x",
                                          "messageId": str(next(sent))}).status_code
                    for _ in range(n)]  # fmt: skip

    assert send(site, burst) == [200] * burst
    with live.client(auth=(site, "")) as c:
        refused = c.post("/v1/t", json={"anonymousId": "a", "event": "x"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "rate_limited"
    ticks.now += 0.5  # one request's worth at 2/s
    assert send(site, 2) == [200, 429]
    assert send(live.write_key, 10) == [200] * 10  # a server key is not limited
    assert live.count() == burst + 1 + 10


@settings(max_examples=200, deadline=None)
@given(st.floats(0.5, 50), st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_no_window_admits_more_than_its_burst_and_rate(rate: float, gaps: list[float]) -> None:
    ticks = Ticks()
    limiter = IpRateLimiter(clock=ticks)
    admitted: list[float] = []
    for gap in gaps:
        ticks.now += gap
        if limiter.take("k", "1.2.3.4", rate) == 0.0:
            admitted.append(ticks.now)
    capacity = max(1.0, rate * BURST_SECONDS)
    for i, start in enumerate(admitted):
        within = [t for t in admitted[i:] if t - start <= 5.0]
        assert len(within) <= capacity + rate * (within[-1] - start) + 1e-6
    assert limiter.take("k", "5.6.7.8", rate) == 0.0  # another address has its own bucket


def test_the_limiter_forgets_idle_buckets() -> None:
    ticks = Ticks()
    limiter = IpRateLimiter(clock=ticks, max_buckets=10)
    for i in range(10):
        limiter.take("k", f"10.0.0.{i}", 1.0)
    ticks.now += 60
    limiter.take("k", "10.0.1.1", 1.0)
    limiter.take("k", "10.0.1.2", 1.0)
    assert len(limiter._buckets) <= 2


@pytest.mark.parametrize(
    ("context", "refused"),
    [
        ({}, False),
        ({"consent": {"categoryPreferences": {"Analytics": True}}}, False),
        ({"consent": {"categoryPreferences": {"Analytics": False}}}, True),
        ({"consent": {"categoryPreferences": {"Advertising": False}}}, False),
        ({"consent": {"categoryPreferences": "no"}}, False),
        ({"consentManagement": {"deniedConsentIds": ["Analytics"]}}, True),
        ({"consentManagement": {"allowedConsentIds": ["Analytics"], "deniedConsentIds": []}},
         False),
    ],
)  # fmt: skip
def test_what_counts_as_refused_consent(context: dict[str, object], refused: bool) -> None:
    assert refuses(context, "Analytics") is refused


def test_no_event_is_stored_for_a_visitor_who_refused_the_category(live: Live) -> None:
    _, site = create_key(live.workspace.store, "site", now=NOW, origins=(SHOP,),
                         consent_category="Analytics")  # fmt: skip
    no = {"consent": {"categoryPreferences": {"Analytics": False}}}
    yes = {"consent": {"categoryPreferences": {"Analytics": True}}}
    batch = [
        {"type": "track", "anonymousId": "a", "event": "x", "messageId": "1", "context": no},
        {"type": "track", "anonymousId": "b", "event": "x", "messageId": "2", "context": yes},
        {"type": "track", "anonymousId": "c", "event": "x", "messageId": "3"},
    ]
    with live.client() as c:
        single = c.post("/v1/t", content=orjson.dumps(
            {"writeKey": site, "anonymousId": "a", "event": "x", "context": no}))  # fmt: skip
        many = c.post("/v1/b", content=orjson.dumps({"writeKey": site, "batch": batch}))
    assert single.status_code == many.status_code == 200  # the library must not retry
    ids = live.workspace.store.fetchall("SELECT message_id FROM events ORDER BY 1")
    assert ids == [("2",), ("3",)]


def test_identify_in_the_browser_stitches_the_anonymous_visitor(live: Live) -> None:
    _, site = create_key(live.workspace.store, "site", now=NOW, origins=(SHOP,))
    calls = [
        ("p", {"anonymousId": "anon-7", "name": "Home"}),
        ("t", {"anonymousId": "anon-7", "event": "Product Viewed"}),
        ("i", {"anonymousId": "anon-7", "userId": "u-7", "traits": {"email": "x@y.z"}}),
        ("t", {"userId": "u-7", "event": "Order Completed"}),
    ]
    with live.client() as c:
        for path, call in calls:
            r = c.post(f"/v1/{path}", content=orjson.dumps(call | {"writeKey": site}),
                       headers={"Origin": SHOP})  # fmt: skip
            assert r.status_code == 200, r.text
    profiles = live.workspace.store.fetchall("SELECT DISTINCT profile_id FROM events")
    assert len(profiles) == 1


Cli = Callable[..., object]


def test_keys_cli_creates_and_lists_public_keys(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    assert cli("init", str(folder)).returncode == 0  # type: ignore[attr-defined]
    made = cli(
        "-w",
        str(folder),
        "keys",
        "create",
        "--name",
        "web",
        "--origin",
        "https://Shop.Example/",
        "--origin",
        "http://localhost:3000",
        "--format",
        "json",
    )
    assert made.returncode == 0, made.stderr  # type: ignore[attr-defined]
    created = json.loads(made.stdout)  # type: ignore[attr-defined]
    assert created["origins"] == ["https://shop.example", "http://localhost:3000"]
    assert created["ip_rate"] == DEFAULT_IP_RATE and created["scopes"] == ["write"]
    text = cli("-w", str(folder), "keys", "create", "--name", "w2", "--origin", SHOP,
               "--ip-rate", "0")  # fmt: skip
    assert "public browser key for https://shop.example; no per-IP limit" in text.stderr  # type: ignore[attr-defined]
    listed = json.loads(cli("-w", str(folder), "keys", "list", "--format", "json").stdout)  # type: ignore[attr-defined]
    assert [k["origins"] for k in listed] == [created["origins"], [SHOP]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--origin", "shop.example"], "did you mean 'https://shop.example'?"),
        (["--origin", "https://shop.example/x"], "has a path"),
        (["--origin", SHOP, "--scope", "read"], "may only write"),
        (["--ip-rate", "3"], "public keys only: add --origin"),
        (["--origin", SHOP, "--ip-rate", "fast"], "'fast' is not a valid float"),
    ],
)
def test_keys_cli_refuses_bad_input(
    cli: Cli, tmp_path: Path, args: list[str], message: str
) -> None:
    folder = tmp_path / "shop"
    cli("init", str(folder))
    result = cli("-w", str(folder), "keys", "create", "--name", "web", *args)
    assert result.returncode != 0  # type: ignore[attr-defined]
    assert message in result.stderr  # type: ignore[attr-defined]
    listed = cli("-w", str(folder), "keys", "list", "--format", "json")
    assert json.loads(listed.stdout) == []  # type: ignore[attr-defined]


def test_the_keys_create_help_states_the_default_ip_rate() -> None:
    # The help text is written out so that the CLI starts without importing the key module.
    from segmint.cli.intake_cmd import keys_create
    from segmint.intake.keys import DEFAULT_IP_RATE

    option = next(p for p in keys_create.params if p.name == "ip_rate")
    assert f"(default {DEFAULT_IP_RATE:g};" in (option.help or "")
