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
