"""Campaign runs end to end against a real aiosmtpd server."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from segmint.clock import FixedClock
from segmint.deliver.consent import record_consent, suppress
from segmint.deliver.errors import CampaignError, SoftBounce
from segmint.deliver.fake import FakeTransport
from segmint.deliver.retry import RetryPolicy
from segmint.deliver.service import campaign_status, list_campaigns, send_campaign

from .conftest import T0, Shop, configure  # type: ignore[import-not-found]

FAST = RetryPolicy(max_attempts=4, base_delay=0.01)


def send(shop: Shop, name: str = "lifecycle_update", **options: Any) -> Any:
    options.setdefault("retry", FAST)
    return send_campaign(shop.workspace, name, clock=FixedClock(T0), **options)


def test_consented_members_get_one_message_and_skips_are_counted(shop: Shop) -> None:
    for name in ("ann", "bob", "cat"):
        shop.add(name)
    shop.add("dan", consent=None)  # never asked: opt_in says no
    shop.add("eve", consent=False)
    shop.add("fay", email=None)
    shop.add("gus", segments=("churned",))  # not in the segment at all
    hal = shop.add("hal")
    record_consent(shop.workspace.store, hal, "offers", "unsubscribed", source="link",
                   at=T0 - timedelta(hours=1))  # fmt: skip
    shop.add("ivy")
    suppress(shop.workspace.store, "ivy@example.com", "bounce", source="smtp", at=T0)
    shop.add("jon")
    suppress(shop.workspace.store, "JON@example.com", "complaint", source="fbl", at=T0)

    report = send(shop)

    received = shop.server.handler.by_recipient()
    assert received == {f"{n}@example.com": 1 for n in ("ann", "bob", "cat")}
    assert report.sent == 3 and report.audience == 9 and not report.failed
    assert dict(report.skipped) == {
        "no_consent": 2,
        "no_email": 1,
        "unsubscribed": 1,
        "suppressed_bounce": 1,
        "complained": 1,
    }
    message = shop.server.handler.received[0].message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/e/u/")
    assert message["Message-ID"].endswith("@example.com>")
    assert "early access" in message.get_payload()[1].get_payload(decode=True).decode()
    delivered = shop.workspace.store.fetchall(
        "SELECT count(*) FROM events WHERE event = 'Email Delivered'"
    )
    assert delivered[0][0] == 3

    again = send(shop)
    assert again.sent == 0 and again.already_sent == 3
    assert len(shop.server.handler.received) == 3
    assert (
        shop.workspace.store.fetchall(
            "SELECT count(*) FROM events WHERE event = 'Email Delivered'"
        )[0][0]
        == 3
    )


def test_hard_bounce_fails_the_recipient_and_suppresses_the_address(shop: Shop) -> None:
    shop.add("ann")
    shop.add("bob")
    shop.server.handler.rcpt_replies["bob@example.com"] = ["550 5.1.1 no such user"]
    report = send(shop)
    assert report.sent == 1 and dict(report.failed) == {"hard_bounce:550": 1}
    rows = shop.workspace.store.fetchall("SELECT address, reason FROM suppressions")
    assert rows == [("bob@example.com", "bounce")]
    assert shop.statuses()["bob"] == ("failed", "hard_bounce:550")
    bounced = shop.workspace.store.fetchall(
        "SELECT profile_id, user_id FROM events WHERE event = 'Email Bounced'"
    )
    assert bounced == [(shop.profiles["bob"], "bob")]
    again = send(shop)
    assert dict(again.skipped) == {"suppressed_bounce": 1} and again.sent == 0


def test_transient_replies_are_retried_within_the_run(shop: Shop) -> None:
    shop.add("ann")
    shop.server.handler.rcpt_replies["ann@example.com"] = ["451 greylisted", "421 busy"]
    report = send(shop)
    assert report.sent == 1 and report.retries == 2
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}


def test_exhausted_retries_fail_and_the_next_run_tries_again(shop: Shop) -> None:
    shop.add("ann")
    shop.server.handler.rcpt_replies["ann@example.com"] = ["451 later"] * 4
    report = send(shop)
    assert dict(report.failed) == {"soft_bounce:451": 1}
    again = send(shop)
    assert again.sent == 1
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}


def test_render_error_fails_one_recipient_not_the_campaign(shop: Shop) -> None:
    shop.add("ann", orders=2, lifetime_value=300)
    shop.add("bob", orders=0, lifetime_value=0)
    record_consent(shop.workspace.store, shop.profiles["ann"], "newsletter", "granted",
                   source="test", at=T0 - timedelta(days=1))  # fmt: skip
    record_consent(shop.workspace.store, shop.profiles["bob"], "newsletter", "granted",
                   source="test", at=T0 - timedelta(days=1))  # fmt: skip
    report = send(shop, "fragile")
    assert report.sent == 1 and dict(report.failed) == {"render_error:error": 1}
    assert shop.statuses("fragile")["bob"] == ("failed", "render_error:error")
    [received] = shop.server.handler.received
    html = received.message.get_payload()[1].get_payload(decode=True).decode()
    assert "https://shop.example.com/winter" not in html  # rewritten to a signed redirect
    assert "/e/c/" in html and "/e/o/" in html


def test_opt_out_policy_sends_to_everyone_who_did_not_refuse(shop: Shop) -> None:
    configure(shop.path, shop.server.port, policy="opt_out")
    shop.reopen()
    shop.add("ann", consent=None)
    shop.add("bob", consent=False)
    report = send(shop)
    assert report.sent == 1 and dict(report.skipped) == {"no_consent": 1}
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}


def test_dry_run_writes_eml_files_and_changes_nothing(shop: Shop, tmp_path: Path) -> None:
    shop.add("ann")
    shop.add("bob", consent=False)
    out = tmp_path / "outbox"
    report = send(shop, dry_run=True, out=out)
    assert report.written == 1 and report.sent == 0 and report.dry_run
    assert dict(report.skipped) == {"no_consent": 1}
    assert [p.name for p in out.iterdir()] == ["ann@example.com.eml"]
    assert b"Subject: Ann, something picked for you" in (out / "ann@example.com.eml").read_bytes()
    assert shop.server.handler.received == []
    assert shop.workspace.store.fetchall("SELECT count(*) FROM sends")[0][0] == 0


def test_injected_transient_faults_still_deliver_each_profile_once(shop: Shop) -> None:
    shop.add_many([f"p{i:02d}" for i in range(20)])
    fake = FakeTransport(transient_prob=0.3, seed=7)
    fake.script["p03@example.com"] = [SoftBounce("451 later", code=451)] * 2
    report = send(shop, transport=fake, retry=RetryPolicy(max_attempts=10, base_delay=0.0))
    assert report.sent == 20 and report.retries >= 2
    recipients = [d.recipients[0] for d in fake.sent]
    assert sorted(recipients) == sorted(f"p{i:02d}@example.com" for i in range(20))
    assert fake.attempts["p03@example.com"] >= 3


def test_unknown_campaign_suggests_the_nearest_name(shop: Shop) -> None:
    with pytest.raises(CampaignError, match="did you mean 'lifecycle_update'"):
        send(shop, "lifecycle_updat")


def test_missing_secret_is_a_clear_error(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMINT_SECRET")
    with pytest.raises(CampaignError, match="set SEGMINT_SECRET"):
        send(shop)


def test_list_and_status(shop: Shop) -> None:
    shop.add("ann")
    shop.add("bob", consent=False)
    send(shop)
    listed = {c["name"]: c for c in list_campaigns(shop.workspace)}
    assert listed["lifecycle_update"]["sent"] == 1 and listed["fragile"]["sent"] == 0
    status = campaign_status(shop.workspace, "lifecycle_update", FixedClock(T0))
    assert status["ledger"] == {"sent": {"": 1}, "skipped": {"no_consent": 1}}


def test_two_profiles_sharing_an_address_get_one_message(shop: Shop) -> None:
    shop.add("ann", email="family@example.com")
    shop.add("bob", email="Family@Example.com")
    report = send(shop)
    assert report.sent == 1 and dict(report.skipped) == {"duplicate_address": 1}
    assert shop.statuses()["bob"] == ("skipped", "duplicate_address")
    assert shop.server.handler.by_recipient() == {"family@example.com": 1}
    again = send(shop)
    assert again.sent == 0 and dict(again.skipped) == {"duplicate_address": 1}


def test_a_person_mailed_before_a_merge_is_not_mailed_again_under_the_survivor(
    shop: Shop,
) -> None:
    old = shop.add("ann")
    assert send(shop).sent == 1
    new = shop.add("ann-2", email="ann.new@example.com")
    store = shop.workspace.store
    with store.transaction():  # identity resolution merged the first profile into the second
        store.execute("UPDATE profiles SET merged_into = ? WHERE profile_id = ?", [new, old])
        store.execute("DELETE FROM memberships WHERE profile_id = ?", [old])
    report = send(shop)
    assert report.sent == 0 and dict(report.skipped) == {"sent_before_merge": 1}
    assert shop.statuses()["ann-2"] == ("skipped", "sent_before_merge")
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}


def smtp_port(shop: Shop, port: int) -> None:
    yaml_file = shop.path / "segmint.yaml"
    text, count = re.subn(r"(smtp: \{host: 127\.0\.0\.1, port: )\d+", rf"\g<1>{port}",
                          yaml_file.read_text())  # fmt: skip
    assert count == 1
    yaml_file.write_text(text)
    shop.reopen()


def test_an_unreachable_server_stops_the_run_instead_of_failing_everyone(
    shop: Shop, unused_port: int
) -> None:
    pids = shop.add_many([f"p{i:02d}" for i in range(12)])
    smtp_port(shop, unused_port)
    with pytest.raises(CampaignError, match=r"stopped: connection failed.*stay pending"):
        send(shop, retry=RetryPolicy(max_attempts=2, base_delay=0.0))
    statuses = [s for s, _ in shop.statuses().values()]
    assert 1 <= statuses.count("failed") <= 2  # those in flight when it stopped
    assert statuses.count("pending") == len(pids) - statuses.count("failed")

    smtp_port(shop, shop.server.port)
    report = send(shop)  # the server is back: everyone gets one message
    assert report.sent == len(pids)
    assert max(shop.server.handler.by_recipient().values()) == 1


def test_refused_credentials_stop_the_run(shop: Shop) -> None:
    from segmint.deliver.errors import AuthenticationFailed

    shop.add_many([f"p{i:02d}" for i in range(6)])
    fake = FakeTransport(
        script={
            f"p{i:02d}@example.com": [AuthenticationFailed("535 bad credentials", code=535)]
            for i in range(6)
        }  # fmt: skip
    )
    with pytest.raises(CampaignError, match="535 bad credentials"):
        send(shop, transport=fake)
    assert sum(fake.attempts.values()) <= 2  # the pool's width, not the audience
