"""With PII sealed at rest, a campaign still reaches the plaintext address, by name."""

from __future__ import annotations

import pytest

from segmint.clock import FixedClock
from segmint.deliver.retry import RetryPolicy
from segmint.deliver.service import send_campaign
from segmint.privacy.keys import generate_master_key
from segmint.traits.batch import refresh
from segmint.traits.validate import workspace_catalog

from .conftest import T0, Shop  # type: ignore[import-not-found]


def test_a_sealed_workspace_sends_to_the_opened_address(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMINT_MASTER_KEY", generate_master_key())
    shop.add("ann")
    ws = shop.workspace
    assert ws.privacy.encrypting
    refresh(ws.store, workspace_catalog(ws), T0)  # trait values from the sealed events
    stored = str(ws.store.fetchall('SELECT "values" FROM trait_values')[0][0])
    assert "ann@example.com" not in stored and "enc:" in stored
    report = send_campaign(ws, "lifecycle_update", clock=FixedClock(T0),
                           retry=RetryPolicy(max_attempts=2, base_delay=0.01))  # fmt: skip
    assert report.sent == 1
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}
    message = shop.server.handler.received[0].message
    assert "enc:" not in message.as_string()


def test_sealed_addresses_still_meet_their_suppressions_and_consents(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segmint.deliver.consent import record_address_consent, suppress
    from segmint.deliver.subjects import history_of

    monkeypatch.setenv("SEGMINT_MASTER_KEY", generate_master_key())
    shop.add_many(["ann", "bea", "cid"])
    ws = shop.workspace
    refresh(ws.store, workspace_catalog(ws), T0)
    # typed as people type them: the gate must still match the stored keyed hashes
    suppress(ws.store, " Bea@Example.com", "complaint", source="test", at=T0)
    record_address_consent(ws.store, "CID@example.com", "*", "unsubscribed", source="test",
                           at=T0)  # fmt: skip
    report = send_campaign(ws, "lifecycle_update", clock=FixedClock(T0),
                           retry=RetryPolicy(max_attempts=2, base_delay=0.01))  # fmt: skip
    assert report.sent == 1
    assert dict(report.skipped) == {"complained": 1, "unsubscribed": 1}
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}
    kept = ws.store.fetchall(
        "SELECT address FROM sends WHERE address IS NOT NULL UNION ALL "
        "SELECT address FROM suppressions UNION ALL SELECT address FROM address_consents"
    )
    assert len(kept) == 3
    assert all("@" not in str(a) for (a,) in kept)
    sealed = ws.store.fetchall("SELECT address FROM sends WHERE address IS NOT NULL")
    assert [ws.privacy.unseal(a) for (a,) in sealed] == ["ann@example.com"]
    # the statement about cid's address counts once in cid's history (identity and trait
    # address are the same stored key), and reads back as the address that was asked about
    _, history = history_of(ws.store, "cid@example.com", ws.definition.consent)
    about = [c for c in history if c.profile_id is None]
    assert [(c.address, c.status) for c in about] == [("cid@example.com", "unsubscribed")]


def test_plaintext_rows_from_before_encryption_still_count(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segmint.deliver.consent import unsuppress

    ws = shop.workspace
    # written by a version (or a workspace) without encryption: the plain address
    at = T0.replace(tzinfo=None)
    ws.store.execute(
        "INSERT INTO suppressions (address, reason, source, occurred_at) VALUES "
        "('dee@example.com', 'bounce', 'old', ?), ('eve@example.com', 'manual', 'old', ?)",
        [at, at],
    )
    monkeypatch.setenv("SEGMINT_MASTER_KEY", generate_master_key())
    shop.add_many(["ann", "dee", "eve"])
    assert ws.privacy.encrypting
    assert unsuppress(ws.store, "EVE@example.com")  # found by its plain form
    refresh(ws.store, workspace_catalog(ws), T0)
    report = send_campaign(ws, "lifecycle_update", clock=FixedClock(T0),
                           retry=RetryPolicy(max_attempts=2, base_delay=0.01))  # fmt: skip
    assert dict(report.skipped) == {"suppressed_bounce": 1}
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1, "eve@example.com": 1}
