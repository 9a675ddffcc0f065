"""Identifier values that cannot name anyone ("none", blanks, 5 as an email) link nobody.

The event is kept as sent, the value is no identity, and ``segmint quality`` counts it per
source and identifier kind. Run on DuckDB and PostgreSQL, through Intake.submit and through
the tracking API.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.api.conftest import serve

from segmint.clock import FixedClock
from segmint.intake import Intake
from segmint.intake.identifiers import identifier_value
from segmint.intake.quality import quality_report
from segmint.workspace import Workspace

from .conftest import NOW, as_json, identify, scalar

JUNK_EMAILS = [5, "none", "None", "not an email", "", "  ", "n/a", "ann@", "@example.com",
               "ann@localhost", "ann @example.com", 5.5, True, ["a@example.com"]]  # fmt: skip


def with_identifiers(ws: Workspace, *names: str) -> Workspace:
    """The same workspace and store with other identifier traits."""
    data = ws.definition.model_dump(by_alias=True) | {"identifiers": list(names)}
    return Workspace(path=ws.path, definition=ws.definition.model_validate(data), _store=ws.store)


def profiles(ws: Workspace, *mids: str) -> set[str]:
    marks = ", ".join("?" for _ in mids)
    rows = ws.store.fetchall(
        f"SELECT DISTINCT profile_id FROM events WHERE message_id IN ({marks})", list(mids)
    )
    return {r[0] for r in rows}


def kinds(ws: Workspace, kind: str) -> list[str]:
    rows = ws.store.fetchall("SELECT value FROM identities WHERE kind = ?", [kind])
    return sorted(r[0] for r in rows)


@pytest.mark.parametrize("junk", JUNK_EMAILS, ids=repr)
def test_junk_email_links_no_visitors(ws: Workspace, intake: Intake, junk: Any) -> None:
    intake.submit([identify("m1", anonymousId="a1", traits={"email": junk})], source="form")
    intake.submit([identify("m2", anonymousId="a2", traits={"email": junk})], source="form")
    assert len(profiles(ws, "m1", "m2")) == 2  # two strangers stay two people
    assert kinds(ws, "email") == []
    stored = as_json(scalar(ws, "SELECT traits FROM events WHERE message_id = 'm1'"))
    assert stored == {"email": junk}  # the event is kept as sent
    report = quality_report(ws.store, ws.definition, NOW)
    form = next(s for s in report.sources if s.source == "form")
    assert form.ignored_identifiers == {"email": 2}
    assert "2 email values not used to link profiles (blank or not valid)" in form.issues


def test_context_traits_junk_is_ignored_too(ws: Workspace, intake: Intake) -> None:
    context = {"traits": {"email": "none"}}
    track = {"type": "track", "event": "Viewed", "context": context}
    intake.submit([track | {"messageId": "m1", "anonymousId": "a1"}], source="web")
    intake.submit([track | {"messageId": "m2", "anonymousId": "a2"}], source="web")
    assert len(profiles(ws, "m1", "m2")) == 2
    report = quality_report(ws.store, ws.definition, NOW)
    assert next(s for s in report.sources if s.source == "web").ignored_identifiers == {"email": 2}


@pytest.mark.parametrize(
    "address",
    ["Ann+News@Example.COM", "ann@bücher.de", " ANN.O'Neil@mail.example.co.uk "],
    ids=repr,
)
def test_legitimate_email_still_links(ws: Workspace, intake: Intake, address: str) -> None:
    intake.submit([identify("m1", anonymousId="a1", traits={"email": address})], source="form")
    intake.submit(
        [identify("m2", anonymousId="a2", traits={"email": address.strip().lower()})],
        source="form",
    )
    assert len(profiles(ws, "m1", "m2")) == 1
    assert kinds(ws, "email") == [address.strip().lower()]
    report = quality_report(ws.store, ws.definition, NOW)
    assert all(not s.ignored_identifiers for s in report.sources)


def test_repeated_message_counts_once(ws: Workspace, intake: Intake) -> None:
    message = identify("m1", anonymousId="a1", traits={"email": "none"})
    intake.submit([message], source="form")
    intake.submit([message], source="form")  # a retry: dropped, not counted again
    report = quality_report(ws.store, ws.definition, NOW)
    assert next(s for s in report.sources if s.source == "form").ignored_identifiers == {"email": 1}


def _two_visitors_typed(ws: Workspace, clock: FixedClock, phone: Any) -> Workspace:
    """Two anonymous visitors (messages m1, m2) who typed the same ``phone`` in an app."""
    ws = with_identifiers(ws, "email", "phone")
    intake = Intake(ws, clock)
    intake.submit([identify("m1", anonymousId="a1", traits={"phone": phone})], source="app")
    intake.submit([identify("m2", anonymousId="a2", traits={"phone": phone})], source="app")
    return ws


@pytest.mark.parametrize("junk", ["none", "0", "12", "call me", "+", "", "unknown", 4.9e12])
def test_junk_phone_links_no_visitors(ws: Workspace, clock: FixedClock, junk: Any) -> None:
    ws = _two_visitors_typed(ws, clock, junk)
    assert len(profiles(ws, "m1", "m2")) == 2
    assert kinds(ws, "phone") == []
    report = quality_report(ws.store, ws.definition, NOW)
    assert next(s for s in report.sources if s.source == "app").ignored_identifiers == {"phone": 2}


@pytest.mark.parametrize(
    "phone", ["+49 151 2345 6789", "(030) 123-4567", "0301234567", 4915123456789]
)
def test_legitimate_phone_still_links(ws: Workspace, clock: FixedClock, phone: Any) -> None:
    ws = _two_visitors_typed(ws, clock, phone)
    assert len(profiles(ws, "m1", "m2")) == 1
    assert kinds(ws, "phone") == [str(phone)]


def test_other_identifier_rejects_placeholders_only(ws: Workspace, clock: FixedClock) -> None:
    ws = with_identifiers(ws, "email", "customer_number")
    intake = Intake(ws, clock)
    for n, value in enumerate(["NULL", "undefined", "-", "0", 0, "C-17"]):
        message = identify(f"m{n}", anonymousId=f"a{n}", traits={"customer_number": value})
        intake.submit([message], source="crm")
    assert kinds(ws, "customer_number") == ["0", "C-17"]  # "0" (string or number) is one
    report = quality_report(ws.store, ws.definition, NOW)
    assert next(s for s in report.sources if s.source == "crm").ignored_identifiers == {
        "customer_number": 3
    }


def test_the_resolver_finds_no_one_by_a_junk_value() -> None:
    assert identifier_value("email", "none") is None
    assert identifier_value("email", " Ann@Example.com ") == "ann@example.com"


def test_tracking_api_ignores_junk_and_reports_the_source(ws: Workspace) -> None:
    for live in serve(ws, FixedClock(NOW)):
        with live.client(auth=(live.write_key, "")) as client:
            for n in (1, 2):
                body = {"anonymousId": f"a{n}", "messageId": f"m{n}", "traits": {"email": "none"}}
                response = client.post("/v1/identify", json=body)
                assert response.status_code == 200, response.text
            refused = client.post("/v1/identify", json={"userId": "undefined", "messageId": "m3"})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["field"] == "userId"
    assert len(profiles(ws, "m1", "m2")) == 2
    assert kinds(ws, "email") == []
    report = quality_report(ws.store, ws.definition, NOW)
    assert [s.ignored_identifiers for s in report.sources if s.events] == [{"email": 2}]


@pytest.mark.parametrize("junk", ["null", "undefined", "  ", "None"])
def test_placeholder_user_id_links_no_visitors(ws: Workspace, intake: Intake, junk: str) -> None:
    intake.submit([identify("m1", anonymousId="a1", userId=junk)], source="web")
    intake.submit([identify("m2", anonymousId="a2", userId=junk)], source="web")
    assert len(profiles(ws, "m1", "m2")) == 2  # was one person: everyone sent as "null"
    assert kinds(ws, "user_id") == []
    assert scalar(ws, "SELECT user_id FROM events WHERE message_id = 'm1'") == junk  # as sent
    report = quality_report(ws.store, ws.definition, NOW)
    assert next(s for s in report.sources if s.source == "web").ignored_identifiers == {
        "user_id": 2
    }


def test_message_with_only_placeholder_ids_is_refused_naming_the_field(
    ws: Workspace, intake: Intake
) -> None:
    result = intake.submit(
        [identify("m1", userId="undefined"), identify("m2", userId="null", anonymousId=" ")],
        source="web",
        invalid="reject",
    )
    assert result.accepted == 0
    reasons = [str(r.error) for r in result.rejected]
    assert reasons == [
        "userId: 'undefined' is blank or a placeholder, not an id: a message needs a real "
        "userId or anonymousId",
        "userId: 'null' is blank or a placeholder, not an id: a message needs a real "
        "userId or anonymousId",
    ]


def test_alias_naming_a_placeholder_is_refused(ws: Workspace, intake: Intake) -> None:
    intake.submit([identify("m1", anonymousId="a1", userId="u1")], source="web")
    alias = {"type": "alias", "messageId": "m2", "userId": "u1", "previousId": "null"}
    result = intake.submit([alias], source="web", invalid="reject")
    assert result.accepted == 0
    assert str(result.rejected[0].error).startswith("previousId: 'null'")


@pytest.mark.parametrize(
    ("text", "shaped"),
    [
        ("o'neil@example.com", True),  # delivery refused the apostrophe intake took
        ("Ann+News@Example.COM", True),
        ("ann@bücher.de", True),
        ("ann@b..de", False),  # delivery took an empty domain label intake refused
        ("ann@.de", False),
        ('"Ann" <ann@example.com>', False),
        ("ann@localhost", False),
    ],
)
def test_intake_and_delivery_agree_on_what_an_address_looks_like(text: str, shaped: bool) -> None:
    from segmint.deliver.consent import looks_like_address
    from segmint.intake.identifiers import usable

    assert looks_like_address(text) is shaped
    assert usable("email", text.strip().lower()) is shaped
