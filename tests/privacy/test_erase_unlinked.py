"""Erasing someone no profile holds: only quarantined messages or an address's consent name them.

Such a person (every message of theirs failed validation; a consent recorded for an address
before any profile had it) was 'no person matches': nothing could erase them but purging
the whole quarantine.
"""

from __future__ import annotations

import pytest

from segmint.deliver.consent import record_address_consent
from segmint.intake.errors import UnknownPersonError
from segmint.intake.pipeline import Intake
from segmint.intake.quarantine import list_quarantine
from segmint.privacy.erase import erase
from segmint.workspace import Workspace

from .conftest import T0

CY = "cy@example.net"


def _quarantine_cy(ws: Workspace) -> None:
    bad = {"type": "identify", "userId": "u-cy", "traits": {"email": CY, "name": "Cy Twombly"},
           "timestamp": "not a date", "messageId": "q-cy"}  # fmt: skip
    Intake(ws).submit([bad], source="test", received_at=T0, invalid="quarantine")


@pytest.mark.parametrize("ref", ["u-cy", "Cy@Example.net", "user_id:u-cy"])
def test_a_person_only_quarantine_names_is_erased(sealed_ws: Workspace, ref: str) -> None:
    ws = sealed_ws
    _quarantine_cy(ws)
    before = ws.privacy.keyring.vault.count()  # type: ignore[union-attr]
    root, receipt = erase(ws.privacy, ref, at=T0)
    assert root is None and receipt.profiles == 0
    assert receipt.deleted["quarantine"] == 1 and receipt.keys_destroyed >= 1
    assert ws.privacy.keyring.vault.count() == before - receipt.keys_destroyed  # type: ignore[union-attr]
    assert [m for m in list_quarantine(ws.store) if "q-cy" in str(m)] == []
    with pytest.raises(UnknownPersonError, match="was erased on"):
        erase(ws.privacy, ref, at=T0)  # erasing twice names the receipt
    # a later import of the id erased is held back, not added (only that id: a quarantined
    # message may name others beside them, so what else it names is not taken as theirs)
    again = {"type": "identify", "timestamp": T0.isoformat(), "messageId": "m-cy-again"}
    again |= {"traits": {"email": CY}, "anonymousId": "x"} if "@" in ref else {"userId": "u-cy"}
    result = Intake(ws).submit([again], source="test", received_at=T0)
    assert result.accepted == 0 and result.quarantined == 1


def test_an_address_only_a_consent_names_is_erased(sealed_ws: Workspace) -> None:
    ws = sealed_ws
    record_address_consent(ws.store, CY, "*", "granted", source="test", at=T0)
    root, receipt = erase(ws.privacy, CY, at=T0)
    assert root is None and receipt.deleted["address_consents"] == 1
    assert ws.store.fetchall("SELECT count(*) FROM address_consents")[0][0] == 0


def test_an_id_nothing_names_is_still_nobody(sealed_ws: Workspace) -> None:
    _quarantine_cy(sealed_ws)
    with pytest.raises(UnknownPersonError, match="no person matches 'u-dee'"):
        erase(sealed_ws.privacy, "u-dee", at=T0)
    assert sealed_ws.store.fetchall("SELECT count(*) FROM erasure_receipts")[0][0] == 0


def test_the_api_erases_someone_only_quarantine_names(sealed_ws: Workspace) -> None:
    import httpx

    from segmint.api import create_app
    from segmint.clock import FixedClock
    from segmint.intake.keys import create_key

    from .test_api import _server

    _quarantine_cy(sealed_ws)
    _, admin = create_key(sealed_ws.store, "dpo", scopes=("admin",), now=T0)
    with _server.ThreadServer(create_app(sealed_ws, FixedClock(T0))) as server:
        url = f"http://127.0.0.1:{server.port}/v1/privacy/erase"
        done = httpx.post(url, json={"person": "u-cy"}, auth=(admin, ""), timeout=30)
        assert done.status_code == 200, done.text
        assert done.json()["profile_id"] is None and done.json()["deleted"]["quarantine"] == 1
        nobody = httpx.post(url, json={"person": "u-dee"}, auth=(admin, ""), timeout=30)
        assert nobody.status_code == 404 and nobody.json()["error"]["field"] == "person"


def test_someone_only_quarantine_names_can_have_their_data_exported(
    sealed_ws: Workspace,
) -> None:
    """Access goes with erasure: what is held on them is their quarantined messages."""
    from segmint.privacy import audit
    from segmint.privacy.export import export_person

    _quarantine_cy(sealed_ws)
    document = export_person(sealed_ws.privacy, "u-cy", at=T0)
    assert document["manifest"]["profile_id"] is None
    assert document["manifest"]["sections"]["quarantine"]["rows"] == 1
    assert "Cy Twombly" in str(document["quarantine"][0])  # opened, as for anyone
    assert document["events"] == [] and document["traits"] == {}
    logged = audit.entries(sealed_ws.store, action="privacy.export")
    assert [e.subject for e in logged] == [None]  # the log never names them by an id


def test_an_id_two_people_hold_is_still_asked_to_be_told_apart(sealed_ws: Workspace) -> None:
    """The look for someone no profile holds must leave an ambiguous id to the resolver:
    409 naming the field over HTTP, as before (not a 500)."""
    import httpx

    from segmint.api import create_app
    from segmint.clock import FixedClock
    from segmint.intake.keys import create_key

    from .conftest import BOB
    from .test_api import _server

    twin = {
        "type": "identify",
        "userId": BOB["email"],
        "timestamp": T0.isoformat(),
        "messageId": "m-twin",
    }  # fmt: skip  (someone whose user id is Bob's address)
    Intake(sealed_ws).submit([twin], source="test", received_at=T0)
    _, admin = create_key(sealed_ws.store, "dpo", scopes=("admin",), now=T0)
    with _server.ThreadServer(create_app(sealed_ws, FixedClock(T0))) as server:
        for action in ("erase", "export"):
            url = f"http://127.0.0.1:{server.port}/v1/privacy/{action}"
            both = httpx.post(url, json={"person": BOB["email"]}, auth=(admin, ""), timeout=30)
            assert both.status_code == 409, both.text
            assert both.json()["error"]["field"] == "person"
