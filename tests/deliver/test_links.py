"""Signed links: the signer, and the router's pixel, redirect, unsubscribe and preferences."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from segmint.api.app import create_app
from segmint.clock import FixedClock
from segmint.deliver.errors import LinkError
from segmint.deliver.gate import ConsentGate
from segmint.deliver.links import LinkSigner, _b64
from segmint.deliver.service import send_campaign
from segmint.intake.keys import create_key

from .conftest import T0, Shop, ThreadServer  # type: ignore[import-not-found]

SIGNER = LinkSigner(b"k" * 32, "https://t.example.com")
ALPHABET64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


def test_tokens_round_trip_and_refuse_any_alteration() -> None:
    token = SIGNER.token("c", {"c": "spring", "p": "p1", "u": "https://shop.example.com/a"})
    assert SIGNER.verify("c", token)["u"] == "https://shop.example.com/a"
    payload, _, tag = token.partition(".")
    forged = _b64(orjson.dumps({"c": "spring", "p": "p1", "u": "https://evil.example"}))
    for bad in (f"{forged}.{tag}", f"{payload}.{tag[:-2]}AA", payload, f"{payload}.", "x.y"):
        with pytest.raises(LinkError):
            SIGNER.verify("c", bad)
    with pytest.raises(LinkError):  # a token for one kind is not valid for another
        SIGNER.verify("u", token)
    with pytest.raises(LinkError):
        LinkSigner(b"other-secret-000000", SIGNER.base_url).verify("c", token)


TOKEN = SIGNER.token("c", {"c": "spring", "p": "p1", "u": "https://shop.example.com/a"})


@pytest.mark.parametrize(
    "bad",
    [
        TOKEN + "====",
        TOKEN + "!!!!",
        TOKEN + "=",
        TOKEN + "\n",
        TOKEN + ".",
        TOKEN.replace(".", ".=", 1),
        TOKEN.replace(".", "=.", 1),
    ],
)
def test_padding_and_junk_after_a_tag_are_refused(bad: str) -> None:
    with pytest.raises(LinkError):
        SIGNER.verify("c", bad)


def test_the_unused_low_bits_of_the_last_character_count() -> None:
    payload, _, tag = TOKEN.partition(".")
    # 16 bytes are 22 characters: the last one carries 2 bits and 4 unused ones
    index = ALPHABET64.index(tag[-1])
    twins = [c for c in ALPHABET64 if ALPHABET64.index(c) >> 4 == index >> 4 and c != tag[-1]]
    assert len(twins) == 15
    for twin in twins:
        with pytest.raises(LinkError):
            SIGNER.verify("c", f"{payload}.{tag[:-1]}{twin}")


JUNK = "=!.~%+/ \n\u00e9"


@st.composite
def altered(draw: st.DrawFn, token: str) -> str:
    """``token`` with characters replaced, inserted, deleted or appended."""
    text = token
    for _ in range(draw(st.integers(1, 2))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["replace", "insert", "delete", "append"]))
        chars = draw(st.sampled_from([JUNK, ALPHABET64]))
        piece = draw(st.text(chars, min_size=1, max_size=4))
        if how == "replace":
            text = text[:at] + piece + text[at + len(piece) :]
        elif how == "insert":
            text = text[:at] + piece + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + len(piece) :]
        else:
            text += piece
    return text


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_change_to_a_valid_token_is_refused(data: st.DataObject) -> None:
    bad = data.draw(altered(TOKEN))
    assume(bad != TOKEN)
    with pytest.raises(LinkError):
        SIGNER.verify("c", bad)


def test_only_web_links_other_than_ours_are_wrapped() -> None:
    assert SIGNER.click_url("c", "p", "m", "mailto:a@b.c") == "mailto:a@b.c"
    assert SIGNER.click_url("c", "p", "m", "javascript:alert(1)") == "javascript:alert(1)"
    own = SIGNER.unsubscribe_url("c", "p", "offers")
    assert SIGNER.click_url("c", "p", "m", own) == own
    assert SIGNER.click_url("c", "p", "m", "https://x.example/").startswith(
        "https://t.example.com/e/c/"
    )


@pytest.fixture
def served(shop: Shop) -> Iterator[tuple[Shop, httpx.Client, FixedClock, dict[str, str]]]:
    """Send the campaign to ann, then serve the app; yields the links found in her email."""
    shop.add("ann")
    send_campaign(shop.workspace, "lifecycle_update", clock=FixedClock(T0))
    message = shop.server.handler.received[0].message
    html = message.get_payload()[1].get_payload(decode=True).decode()
    links = {
        "open": re.search(r'src="http://127.0.0.1:8000(/e/o/[^"]+)"', html)[1],  # type: ignore[index]
        "unsubscribe": message["List-Unsubscribe"]
        .strip("<>")
        .removeprefix("http://127.0.0.1:8000"),
    }
    clock = FixedClock(T0 + timedelta(hours=1))
    app = create_app(shop.workspace, clock)
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield shop, client, clock, links


def events(shop: Shop, name: str) -> list[dict[str, Any]]:
    rows = shop.workspace.store.fetchall(
        "SELECT CAST(properties AS TEXT) FROM events WHERE event = ? ORDER BY timestamp", [name]
    )
    return [orjson.loads(r[0]) for r in rows]


def test_open_pixel_records_opens_and_flags_machine_opens(served: Any) -> None:
    shop, client, clock, links = served
    human = client.get(links["open"], headers={"user-agent": CHROME})
    assert human.status_code == 200 and human.headers["content-type"] == "image/gif"
    clock.advance(timedelta(seconds=1))
    client.get(
        links["open"], headers={"user-agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}
    )
    clock.set(T0 + timedelta(seconds=2))  # two seconds after delivery: prefetched
    client.get(links["open"], headers={"user-agent": CHROME})
    opened = events(shop, "Email Opened")
    assert [o["machine_open"] for o in opened] == [True, False, True]  # ordered by time
    assert {o["campaign"] for o in opened} == {"lifecycle_update"}


def test_click_redirects_to_the_signed_target_only(served: Any) -> None:
    shop, client, _, _ = served
    signer = LinkSigner.from_email(shop.workspace.definition.email)
    pid = shop.profiles["ann"]
    url = signer.click_url("lifecycle_update", pid, "<m@x>", "https://shop.example.com/winter")
    path = url.removeprefix("http://127.0.0.1:8000")
    answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://shop.example.com/winter"
    [clicked] = events(shop, "Email Link Clicked")
    assert clicked["url"] == "https://shop.example.com/winter" and not clicked["machine_click"]

    token = path.rsplit("/", 1)[1]
    forged = _b64(orjson.dumps({"c": "lifecycle_update", "p": pid, "u": "https://evil.example"}))
    refused = client.get(f"/e/c/{forged}.{token.split('.')[1]}")
    assert refused.status_code == 403 and "location" not in refused.headers
    assert refused.json()["error"]["code"] == "invalid_link"
    sneaky = signer.url("c", {"c": "x", "p": pid, "u": "javascript:alert(1)"})
    assert client.get(sneaky.removeprefix("http://127.0.0.1:8000")).status_code == 403
    assert len(events(shop, "Email Link Clicked")) == 1


def test_one_click_unsubscribe_records_consent_and_stops_the_next_send(served: Any) -> None:
    shop, client, clock, links = served
    page = client.get(links["unsubscribe"])
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert (
        shop.workspace.store.fetchall(
            "SELECT count(*) FROM consents WHERE status = 'unsubscribed'"
        )[0][0]
        == 0
    )
    done = client.post(
        links["unsubscribe"],
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "unsubscribed" in done.text
    rows = shop.workspace.store.fetchall(
        "SELECT topic, status, source FROM consents WHERE status = 'unsubscribed'"
    )
    assert rows == [("offers", "unsubscribed", "unsubscribe_link")]
    assert events(shop, "Email Unsubscribed")[0]["topic"] == "offers"
    gate = ConsentGate(shop.workspace.store, shop.workspace.definition.consent, "offers",
                       clock.now(), "email")  # fmt: skip
    assert gate.check(shop.workspace.store and _profile(shop, "ann")) == "unsubscribed"

    tampered = links["unsubscribe"][:-3] + "AAA"
    assert client.post(tampered, content=b"List-Unsubscribe=One-Click").status_code == 403


def _profile(shop: Shop, user: str) -> Any:
    from segmint.profiles import load_profile

    return load_profile(shop.workspace.store, shop.profiles[user])


def test_preference_page_sets_topics(served: Any) -> None:
    shop, client, clock, _ = served
    signer = LinkSigner.from_email(shop.workspace.definition.email)
    path = signer.preferences_url(shop.profiles["ann"]).removeprefix("http://127.0.0.1:8000")
    page = client.get(path)
    assert page.text.count("checked") == 2  # email_consent: true granted every topic
    saved = client.post(path, content=b"topic=newsletter",
                        headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert saved.status_code == 200 and saved.text.count("checked") == 1
    rows = shop.workspace.store.fetchall(
        "SELECT topic, status, source FROM consents WHERE source = 'preferences'"
    )
    assert rows == [("offers", "unsubscribed", "preferences")]


def test_consent_and_suppression_api(served: Any) -> None:
    shop, client, clock, _ = served
    _, secret = create_key(shop.workspace.store, "crm", now=T0)
    auth = {"authorization": f"Bearer {secret}"}
    body = {"profileId": shop.profiles["ann"], "topic": "newsletter", "status": "granted",
            "source": "crm"}  # fmt: skip
    assert client.post("/v1/consent", json=body).status_code == 401
    ok = client.post("/v1/consent", json=body, headers=auth)
    assert ok.status_code == 200 and ok.json()["status"] == "granted"
    bad = client.post("/v1/consent", json=body | {"topic": "spam"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "topic"
    complaint = client.post("/v1/suppressions", json={"address": "Ann@Example.com"}, headers=auth)
    assert complaint.status_code == 200
    gate = ConsentGate(shop.workspace.store, shop.workspace.definition.consent, "offers",
                       clock.now(), "email")  # fmt: skip
    assert gate.check(_profile(shop, "ann")) == "complained"


def test_machine_open_rules() -> None:
    from segmint.deliver.engagement import is_machine_agent, is_machine_open

    sent = T0
    later = T0 + timedelta(hours=2)
    assert not is_machine_open(CHROME, later, sent)
    assert is_machine_open(CHROME, T0 + timedelta(seconds=3), sent)
    assert is_machine_open("Mozilla/5.0", later, sent)  # Apple's privacy proxy
    assert is_machine_open("Mozilla/5.0 (Windows NT 5.1; rv:11.0) GoogleImageProxy", later, sent)
    assert is_machine_open(None, later, sent)
    assert not is_machine_open(CHROME, later, None)
    assert is_machine_agent("Barracuda Sentinel (EE)") and not is_machine_agent(CHROME)


def test_the_server_refuses_a_padded_or_twiddled_link(served: Any) -> None:
    shop, client, _, links = served
    opened = links["open"]
    last = opened[-1]
    twin = next(
        c
        for c in ALPHABET64
        if c != last and ALPHABET64.index(c) >> 4 == ALPHABET64.index(last) >> 4
    )
    for bad in (opened + "====", opened + "!!!!", opened[:-1] + twin):
        response = client.get(bad, headers={"user-agent": CHROME})
        assert response.status_code == 403, bad
        assert response.json()["error"]["code"] == "invalid_link"
    for bad in (links["unsubscribe"] + "====", links["unsubscribe"] + "%21%21"):
        assert client.post(bad).status_code == 403
    assert events(shop, "Email Opened") == []


def test_consent_api_refuses_a_statement_dated_later_than_now(served: Any) -> None:
    """An unsubscribe dated next month was recorded, and let this month's email through."""
    shop, client, clock, _ = served
    _, secret = create_key(shop.workspace.store, "crm", now=T0)
    auth = {"authorization": f"Bearer {secret}"}
    body = {"profileId": shop.profiles["ann"], "topic": "offers", "status": "unsubscribed"}
    later = (clock.now() + timedelta(days=30)).isoformat()
    refused = client.post("/v1/consent", json=body | {"timestamp": later}, headers=auth)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "timestamp"
    assert "later than now" in refused.json()["error"]["message"]
    assert shop.workspace.store.fetchall("SELECT count(*) FROM consents WHERE source = 'api'") == [
        (0,)
    ]
    fast = (clock.now() + timedelta(seconds=30)).isoformat()  # a client's clock running fast
    ok = client.post("/v1/consent", json=body | {"timestamp": fast}, headers=auth)
    assert ok.status_code == 200 and ok.json()["occurredAt"] == clock.now().isoformat()
