"""Email and webhooks retry through one mechanism: the same RetryPolicy object decides both.

Email is sent to the real SMTP server of the fixtures, which answers 451 to one recipient;
webhooks are POSTed to a real local HTTP server that answers 503. Both must make exactly
the policy's attempts, wait the policy's delays, and give up the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segmint.clock import FixedClock
from segmint.config.model import WebhookDef
from segmint.deliver.errors import HardBounce, SoftBounce
from segmint.deliver.fake import FakeTransport
from segmint.deliver.outbox import Outbox
from segmint.deliver.retry import RetryPolicy, with_retries
from segmint.deliver.service import build_run
from segmint.errors import SegmintError
from segmint.membership.changes import diff_members, write_changes
from segmint.membership.webhooks import WebhookDispatcher, WebhookOutbox, outbox_status

from .conftest import T0, Shop  # type: ignore[import-not-found]

POLICY = RetryPolicy(max_attempts=3, base_delay=0.01, factor=3.0, max_delay=1.0)


@pytest.fixture
def failing_url() -> Iterator[tuple[str, list[int]]]:
    """A real HTTP server answering 503 to every POST; yields its URL and a hit counter."""
    hits: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hits.append(1)
            self.send_response(503)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", hits
    server.shutdown()
    server.server_close()
    thread.join()


def test_email_and_webhook_retries_follow_the_same_policy_object(
    shop: Shop, failing_url: tuple[str, list[int]]
) -> None:
    store = shop.workspace.store
    # email: the SMTP server defers ann for good
    shop.add("ann")
    shop.server.handler.rcpt_replies["ann@example.com"] = ["451 try later"] * 10
    run = build_run(shop.workspace, "lifecycle_update", clock=FixedClock(T0), retry=POLICY)
    assert run.retry is POLICY
    report = asyncio.run(run.run())
    smtp_attempts = 10 - len(shop.server.handler.rcpt_replies["ann@example.com"])
    assert smtp_attempts == POLICY.max_attempts
    assert report.retries == POLICY.max_attempts - 1
    assert dict(report.failed) == {"soft_bounce:451": 1}

    # webhooks: the receiver answers 503 for good; the webhook sets no attempt limit
    url, hits = failing_url
    hooks = {"crm": WebhookDef(url=url)}
    outbox = WebhookOutbox(store, hooks)
    write_changes(store, diff_members("p1", set(), {"vip"}, T0, lambda s, k: {"source": "test"}))
    assert outbox.enqueue_new(T0) == 1
    dispatcher = WebhookDispatcher(store, hooks, secrets={"crm": b"k"}, retry=POLICY)
    assert dispatcher.policy("crm") is POLICY
    now, gaps = T0, []
    try:
        while (report_ := dispatcher.deliver_due(now)).dead == 0:
            assert report_.retried == 1
            due = outbox_status(store)["webhooks"]["crm"]["next_attempt_at"]
            gaps.append(due - now)
            now = due
    finally:
        dispatcher.close()
    assert len(hits) == POLICY.max_attempts
    assert gaps == [POLICY.backoff(n) for n in range(1, POLICY.max_attempts)]


def test_the_email_retry_loop_sleeps_the_policy_delays() -> None:
    transport = FakeTransport(script={"a@x.org": [SoftBounce("451", code=451)] * 5})
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(SoftBounce):
        asyncio.run(
            with_retries(lambda: transport.send(b"m", "s@x.org", ["a@x.org"]), POLICY, sleep=sleep)
        )
    assert slept == [POLICY.delay(1), POLICY.delay(2)]
    assert transport.attempts["a@x.org"] == POLICY.max_attempts


def test_a_webhook_max_attempts_replaces_only_the_attempt_limit(duck_store) -> None:
    hooks = {"crm": WebhookDef(url="http://x", max_attempts=7)}
    dispatcher = WebhookDispatcher(duck_store, hooks, secrets={"crm": b"k"}, retry=POLICY)
    policy = dispatcher.policy("crm")
    dispatcher.close()
    assert policy.max_attempts == 7
    assert (policy.base_delay, policy.factor, policy.max_delay) == (0.01, 3.0, 1.0)


def test_the_decision_reads_only_the_mark() -> None:
    assert POLICY.retryable(SoftBounce("451"), 1)
    assert not POLICY.retryable(SoftBounce("451"), POLICY.max_attempts)
    assert not POLICY.retryable(HardBounce("550"), 1)
    assert not POLICY.retryable(SegmintError("unmarked"), 1)
    assert not POLICY.retryable(RuntimeError("a bug"), 1)
    assert POLICY.backoff(2) == timedelta(seconds=0.03)


def test_an_unmarked_error_dead_letters_its_row_and_the_rest_still_go(duck_store) -> None:
    outbox = Outbox(duck_store, "webhook_outbox", destination="webhook")
    outbox.enqueue([("bad", "1"), ("good", "2")], T0)
    sent: list[str] = []

    def send(row, as_of):  # type: ignore[no-untyped-def]
        if row.destination == "bad":
            raise KeyError("bug")
        sent.append(row.payload)

    report = outbox.deliver_due(T0, send, lambda name: POLICY)
    assert (report.delivered, report.retried, report.dead) == (1, 0, 1)
    assert sent == ["2"]
    [letter] = outbox.status()["dead_letters"]
    assert letter["destination"] == "bad" and letter["last_error"] == "KeyError: 'bug'"


def test_outbox_names_must_be_identifiers(duck_store) -> None:
    with pytest.raises(ValueError, match="identifier"):
        Outbox(duck_store, "webhook_outbox; DROP TABLE events")
