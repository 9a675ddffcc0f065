from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis

from segmint.config.model import WebhookDef
from segmint.deliver.retry import RetryPolicy
from segmint.membership.changes import diff_members, read_changes, write_changes
from segmint.membership.errors import MembershipError
from segmint.membership.hub import ChangeHub
from segmint.membership.redis_stream import RedisChangeStream
from segmint.membership.webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDispatcher,
    WebhookOutbox,
    outbox_status,
    sign,
    verify,
    webhook_outbox,
)
from segmint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = b"s3cret"


def cause(segment: str, kind: str) -> dict[str, object]:
    return {"source": "event", "rule": "orders > 1", "traits": ["orders"]}


def record(store, pid: str, old: set[str], new: set[str], at: datetime = T0) -> None:
    write_changes(store, diff_members(pid, old, new, at, cause))


def test_hub_calls_every_subscriber_and_survives_a_failing_one(caplog):
    hub = ChangeHub()
    seen: list[str] = []

    def broken(changes):
        raise ValueError("subscriber bug")

    hub.subscribe(broken)
    stop = hub.subscribe(lambda changes: seen.extend(c.segment for c in changes))
    hub.publish(diff_members("p1", set(), {"a", "b"}, T0, cause))
    assert seen == ["a", "b"]
    assert "subscriber bug" in caplog.text
    stop()
    hub.publish(diff_members("p1", set(), {"c"}, T0, cause))
    assert seen == ["a", "b"]


def test_redis_stream_carries_changes_in_order_once(duck_store, redis_url):
    stream = f"segmint:test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url)
    record(duck_store, "p0", set(), {"old"})  # before the stream existed: not published
    publisher = RedisChangeStream(duck_store, redis_url, stream)
    try:
        record(duck_store, "p1", set(), {"vip", "buyers"})
        assert publisher.pump() == 2
        record(duck_store, "p1", {"vip"}, set(), T0 + timedelta(days=1))
        publisher([])  # as a hub subscriber
        assert publisher.pump() == 0
        entries = client.xrange(stream)
        fields = [{k.decode(): v.decode() for k, v in e[1].items()} for e in entries]
        assert [(f["segment"], f["change"]) for f in fields] == [
            ("buyers", "enter"),
            ("vip", "enter"),
            ("vip", "exit"),
        ]
        assert orjson.loads(fields[0]["cause"]) == cause("buyers", "enter")
        assert fields[2]["occurred_at"] == (T0 + timedelta(days=1)).isoformat()
        ids = [int(f["id"]) for f in fields]
        assert ids == sorted(ids)
    finally:
        client.delete(stream)
        client.close()
        publisher.close()


def test_redis_stream_resumes_after_restart(duck_store, redis_url):
    stream = f"segmint:test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url)
    first = RedisChangeStream(duck_store, redis_url, stream)
    try:
        record(duck_store, "p1", set(), {"a"})
        first.pump()
        first.close()
        record(duck_store, "p2", set(), {"b"})  # recorded while no publisher ran
        second = RedisChangeStream(duck_store, redis_url, stream)
        assert second.pump() == 1
        second.close()
        assert [e[1][b"profile_id"] for e in client.xrange(stream)] == [b"p1", b"p2"]
    finally:
        client.delete(stream)
        client.close()


def test_signature_is_hmac_sha256_over_timestamp_and_body():
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, body) == "v1=" + expected
    now = datetime.fromtimestamp(1700000100, UTC)
    assert verify(SECRET, body, "1700000000", "v1=" + expected, now)
    assert not verify(SECRET, body + b" ", "1700000000", "v1=" + expected, now)
    assert not verify(SECRET, body, "1700000000", "v1=" + expected, now + timedelta(hours=1))


def hooks(url: str, **extra: object) -> dict[str, WebhookDef]:
    return {"crm": WebhookDef(url=url, **extra)}  # type: ignore[arg-type]


def test_webhook_delivers_signed_json(store, receiver):
    outbox = WebhookOutbox(store, hooks(receiver.url, segments=("vip",)))
    outbox.enqueue_new(T0)  # creates the cursor
    with store.transaction():
        record(store, "p1", set(), {"vip", "other"})
        assert outbox.enqueue_new(T0) == 1  # "other" is filtered out
    dispatcher = WebhookDispatcher(store, outbox.webhooks, secrets={"crm": SECRET})
    try:
        report = dispatcher.deliver_due(T0)
    finally:
        dispatcher.close()
    assert report.delivered == 1
    [(headers, body)] = receiver.received
    payload = orjson.loads(body)
    assert payload["segment"] == "vip" and payload["change"] == "enter"
    assert payload["profile_id"] == "p1" and payload["type"] == "segment.enter"
    assert payload["id"] == read_changes(store, segment="vip")[0].id
    assert headers[TIMESTAMP_HEADER] == str(int(T0.timestamp()))
    assert verify(SECRET, body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], T0)
    assert headers[ID_HEADER].isdigit()
    status = outbox_status(store)
    assert status["webhooks"]["crm"]["delivered"] == 1
    assert status["webhooks"]["crm"]["pending"] == 0


def test_webhook_retries_with_exponential_backoff_until_the_receiver_accepts(store, receiver):
    receiver.fail_times = 3
    outbox = WebhookOutbox(store, hooks(receiver.url))
    outbox.enqueue_new(T0)
    record(store, "p1", set(), {"vip"})
    outbox.enqueue_new(T0)
    dispatcher = WebhookDispatcher(
        store, outbox.webhooks, secrets={"crm": SECRET}, retry=RetryPolicy(base_delay=10)
    )
    now = T0
    try:
        for expected_delay in (10, 20, 40):
            assert dispatcher.deliver_due(now).retried == 1
            due = outbox_status(store)["webhooks"]["crm"]["next_attempt_at"]
            assert due == now + timedelta(seconds=expected_delay)
            assert dispatcher.deliver_due(due - timedelta(microseconds=1)).retried == 0
            now = due
        assert dispatcher.deliver_due(now).delivered == 1
    finally:
        dispatcher.close()
    assert receiver.attempts == 4 and len(receiver.received) == 1
    attempts = store.fetchall("SELECT attempts, status FROM webhook_outbox")
    assert attempts == [(4, "delivered")]


def test_webhook_is_dead_lettered_after_max_attempts(store, receiver):
    receiver.fail_times = 100
    outbox = WebhookOutbox(store, hooks(receiver.url, max_attempts=3))
    outbox.enqueue_new(T0)
    record(store, "p1", set(), {"vip"})
    outbox.enqueue_new(T0)
    dispatcher = WebhookDispatcher(store, outbox.webhooks, secrets={"crm": SECRET})
    try:
        now = T0
        for _ in range(3):
            dispatcher.deliver_due(now)
            now += timedelta(days=1)
        assert dispatcher.deliver_due(now + timedelta(days=30)).delivered == 0
    finally:
        dispatcher.close()
    assert receiver.attempts == 3
    status = outbox_status(store)
    assert status["webhooks"]["crm"]["dead"] == 1
    [letter] = status["dead_letters"]
    assert letter["attempts"] == 3 and "HTTP 503" in letter["last_error"]


def test_client_errors_are_terminal_and_dead_letter_at_once(duck_store, receiver):
    receiver.fail_times, receiver.fail_status = 1, 400
    outbox = WebhookOutbox(duck_store, hooks(receiver.url))
    outbox.enqueue_new(T0)
    record(duck_store, "p1", set(), {"vip"})
    outbox.enqueue_new(T0)
    dispatcher = WebhookDispatcher(duck_store, outbox.webhooks, secrets={"crm": SECRET})
    try:
        assert dispatcher.deliver_due(T0).dead == 1
    finally:
        dispatcher.close()


def test_unreachable_receiver_is_retried(duck_store):
    outbox = WebhookOutbox(duck_store, hooks("http://127.0.0.1:9/nothing"))
    outbox.enqueue_new(T0)
    record(duck_store, "p1", set(), {"vip"})
    outbox.enqueue_new(T0)
    dispatcher = WebhookDispatcher(duck_store, outbox.webhooks, secrets={"crm": SECRET})
    try:
        assert dispatcher.deliver_due(T0).retried == 1
    finally:
        dispatcher.close()
    [(error,)] = duck_store.fetchall("SELECT last_error FROM webhook_outbox")
    assert "ConnectError" in error


def test_enqueue_rolls_back_with_the_changes(duck_store, receiver):
    outbox = WebhookOutbox(duck_store, hooks(receiver.url))
    outbox.enqueue_new(T0)
    with pytest.raises(RuntimeError), duck_store.transaction():
        record(duck_store, "p1", set(), {"vip"})
        outbox.enqueue_new(T0)
        raise RuntimeError("crash")
    assert duck_store.fetchall("SELECT count(*) FROM webhook_outbox") == [(0,)]
    record(duck_store, "p1", set(), {"vip"})
    assert outbox.enqueue_new(T0) == 1


def test_missing_secret_is_a_clear_error(duck_store, monkeypatch):
    monkeypatch.delenv("HOOK_SECRET_FOR_TEST", raising=False)
    with pytest.raises(MembershipError, match="HOOK_SECRET_FOR_TEST"):
        WebhookDispatcher(duck_store, hooks("http://x", secret_env="HOOK_SECRET_FOR_TEST"))


WEBHOOK_YAML = """
webhooks:
  crm:
    url: {url}
    segments: [{segments}]
    max_attempts: {attempts}
"""


def webhook_workspace(cli, tmp_path, url: str, segments: str = "vip", attempts: int = 3):  # type: ignore[no-untyped-def]
    path = tmp_path / "shop"
    assert cli("init", str(path)).returncode == 0
    with (path / "segmint.yaml").open("a") as f:
        f.write(WEBHOOK_YAML.format(url=url, segments=segments, attempts=attempts))
    return path


def test_webhooks_through_the_cli_refresh_deliver_status(cli, tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("SEGMINT_WEBHOOK_SECRET", "s3cret")
    path = webhook_workspace(cli, tmp_path, receiver.url, segments="vip, loyal_customer")
    ws = ["-w", str(path)]
    status = orjson.loads(cli(*ws, "webhooks", "status", "--format", "json").stdout)
    assert status == {"webhooks": {"crm": {"pending": 0, "delivered": 0, "dead": 0}},
                      "dead_letters": []}  # fmt: skip
    for name in ("crm_contacts", "shop_orders"):
        assert cli(*ws, "ingest", str(path / f"data/{name}.csv"), "--mapping", name).returncode == 0
    assert cli(*ws, "refresh", "--as-of", "2026-11-01T00:00:00Z").returncode == 0
    queued = orjson.loads(cli(*ws, "webhooks", "status", "--format", "json").stdout)
    pending = queued["webhooks"]["crm"]["pending"]
    assert pending > 0
    out = cli(*ws, "webhooks", "deliver", "--as-of", "2026-11-01T00:00:10Z")
    assert out.returncode == 0 and out.stdout.strip() == f"delivered {pending}, retrying 0, dead 0"
    bodies = [orjson.loads(body) for _, body in receiver.received]
    assert {b["segment"] for b in bodies} <= {"vip", "loyal_customer"} and len(bodies) == pending
    table = cli(*ws, "webhooks", "status").stdout
    assert "crm" in table and str(pending) in table


def test_a_webhook_segment_typo_is_a_config_error_with_a_suggestion(cli, tmp_path):
    path = webhook_workspace(cli, tmp_path, "http://127.0.0.1:9/x", segments="vip, vipp")
    out = cli("-w", str(path), "webhooks", "status")
    assert out.returncode == 1
    assert "unknown segment 'vipp' in webhook 'crm' (at webhooks.crm.segments[1])" in out.stderr
    assert "segments: [vip, vipp]" in out.stderr  # the source line, brackets and all
    assert "did you mean 'vip'?" in out.stderr


def test_max_attempts_below_one_is_refused(cli, tmp_path):
    path = webhook_workspace(cli, tmp_path, "http://127.0.0.1:9/x", attempts=0)
    out = cli("-w", str(path), "webhooks", "status")
    assert out.returncode == 1 and "webhooks.crm.max_attempts" in out.stderr


def test_deliver_without_a_secret_names_the_variable(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("SEGMINT_WEBHOOK_SECRET", raising=False)
    path = webhook_workspace(cli, tmp_path, "http://127.0.0.1:9/x")
    out = cli("-w", str(path), "webhooks", "deliver", "--as-of", "2026-11-01T00:00:00Z")
    assert out.returncode == 1 and "SEGMINT_WEBHOOK_SECRET" in out.stderr
    assert "Traceback" not in out.stderr


def test_webhooks_status_prints_dead_letters_as_they_are(cli, tmp_path):
    path = webhook_workspace(cli, tmp_path, "http://127.0.0.1:9/x")
    ws = Workspace.open(path)
    try:
        outbox = webhook_outbox(ws.store)
        outbox.enqueue([("crm", "{}")], T0)
        ws.store.execute(
            "UPDATE webhook_outbox SET status = 'dead', attempts = 1, "
            "last_error = 'HTTP 400: [bad signature] rejected'"
        )
    finally:
        ws.close()
    out = cli("-w", str(path), "webhooks", "status")
    assert out.returncode == 0
    assert "[bad signature]" in " ".join(out.stdout.split())
