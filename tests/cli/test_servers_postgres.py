"""Several processes on one PostgreSQL store: two servers and a writing command at once.

Two real ``segmint serve`` subprocesses share a store; ``segmint ingest`` and ``segmint
campaign send`` run beside them. One server leads (applies events in real time), the other
only stores its own; the events of every writer reach memberships once.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.cli.servers import start_server, stop_server
from tests.cli.test_writes_while_serving import SECRET, _without_journeys
from tests.deliver.conftest import free_port

from segmint.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres
RETENTION = "\nprivacy:\n  retention:\n    Never Sent: 30d\n"


class Servers:
    """Two servers on one store, and how to run commands beside them."""

    def __init__(self, ws: Path, env: dict[str, str], url: str) -> None:
        self.ws, self.env, self.url = ws, env, url
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "segmint", "-w", str(self.ws), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=120)
        assert result.returncode == 0, result.stderr
        return result

    def start(self) -> None:
        port = free_port()
        self.procs.append(start_server(self.ws, port, self.env))
        self.ports.append(port)

    def store(self) -> PostgresStore:
        return PostgresStore(self.url)

    def stop(self) -> None:
        for proc in self.procs:
            stop_server(proc)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    from tests.conftest import postgres_schema

    dropped = contextlib.ExitStack()
    schema, url = dropped.enter_context(postgres_schema("t_servers"))
    env = {**os.environ, "SEGMINT_DATABASE_URL": url, "SEGMINT_SECRET": SECRET}
    ws = tmp_path_factory.mktemp("pg") / "shop"
    subprocess.run([sys.executable, "-m", "segmint", "init", str(ws)], check=True,
                   capture_output=True, env=env)  # fmt: skip
    config = ws / "segmint.yaml"
    # retention of an event nobody sends: each run deletes nothing and is audited
    config.write_text(_without_journeys(config.read_text()) + RETENTION)
    found = Servers(ws, env, url)
    found.run("ingest", str(ws / "data" / "crm_contacts.csv"), "--mapping", "crm_contacts")
    found.run("refresh")
    try:
        found.start()
        found.start()
        yield found
    finally:
        found.stop()
        dropped.close()


def _until(check: Any, what: str, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


def test_one_server_leads_and_both_report_their_lag(servers: Servers) -> None:
    healths = [
        httpx.get(f"http://127.0.0.1:{p}/v1/health", timeout=5).json() for p in servers.ports
    ]
    assert all(h["status"] == "ok" and h["realtime"]["events"] == 0 for h in healths)

    def reports() -> list[dict[str, Any]]:
        status = json.loads(servers.run("status", "--format", "json").stdout)
        running = [s for s in status["realtime"]["servers"] if s["running"]]
        return running if len(running) == 2 else []

    found = _until(reports, "both servers publish their lag in status")
    assert {s["server"].split(":")[-1] for s in found} == {str(p.pid) for p in servers.procs}
    # status says which one leads (applies events, runs the timers), and the other stands by
    lines = servers.run("status").stdout
    assert sorted(s["leading"] for s in _until(reports, "reports")) == [False, True]
    assert lines.count("leads: applies events") == 1 and lines.count("stands by") == 1


def test_events_of_every_writer_reach_memberships_once(servers: Servers) -> None:
    store = servers.store()
    try:
        assert store.fetchall("SELECT count(*) FROM memberships WHERE segment = 'vip'") == [(0,)]
        servers.run("ingest", str(servers.ws / "data" / "shop_orders.csv"), "--mapping",
                    "shop_orders")  # fmt: skip
        # and events sent to the server that does not lead, and to the one that does
        created = servers.run("keys", "create", "--name", "t").stdout.split()
        key = next(w for w in created if w.startswith("sgm_"))
        for n, port in enumerate(servers.ports):
            body = {"userId": f"walk-in-{n}", "event": "Order Completed", "messageId": f"w{n}",
                    "properties": {"total": 1500}}  # fmt: skip
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/track", json=body,
                                auth=(key, ""), timeout=10)  # fmt: skip
            assert answer.status_code == 200, answer.text

        def vips() -> int:
            found = store.fetchall("SELECT count(*) FROM memberships WHERE segment = 'vip'")
            return int(found[0][0]) if int(found[0][0]) == 3 else 0

        _until(vips, "the orders of the ingest and of both servers reach real time")
        twice = store.fetchall(
            "SELECT segment, profile_id, change, count(*) FROM membership_changes "
            "GROUP BY segment, profile_id, change HAVING count(*) > 1"
        )
        assert twice == []
        causes = store.fetchall(
            "SELECT cause FROM membership_changes WHERE segment = 'vip' ORDER BY id"
        )
        sources = {json.loads(c)["source"] if isinstance(c, str) else c["source"]
                   for (c,) in causes}  # fmt: skip
        assert sources == {"event"}

        def values() -> dict[str, Any]:
            rows = store.fetchall(
                'SELECT v."values" FROM trait_values v JOIN identities i '
                "ON i.profile_id = v.profile_id WHERE i.kind = 'user_id' AND i.value = 'walk-in-0'"
            )
            return dict(rows[0][0]) if rows else {}

        saved = _until(values, "the leader saves the trait values")
        assert saved["orders"] == 1 and saved["lifetime_value"] == 1500  # applied once
    finally:
        store.close()


def test_a_campaign_send_runs_beside_both_servers(servers: Servers) -> None:
    result = servers.run("campaign", "send", "lifecycle_update", "--dry-run", "--format", "json")
    assert json.loads(result.stdout)["audience"] >= 1


def test_only_the_leader_runs_retention_and_the_next_one_takes_over(servers: Servers) -> None:
    """Retention runs on one server only; when it stops, the server that takes the lead
    runs it. (Last in the module: it stops the leader. Every role competes for the same
    lead: tests/scale/test_workers.py.)"""
    store = servers.store()

    def runs() -> int:
        found = store.fetchall(
            "SELECT count(*) FROM audit_log WHERE action = 'privacy.retention' AND actor = 'serve'"
        )
        return int(found[0][0])

    try:
        _until(runs, "the leader enforces retention at its start")
        time.sleep(3)  # the other server checks every second: it must not run it
        assert runs() == 1
        leader = servers.procs.pop(0)  # the first server started took the lead
        servers.ports.pop(0)
        stop_server(leader)
        _until(lambda: runs() == 2, "the server taking the lead enforces retention")
        time.sleep(2)
        assert runs() == 2
    finally:
        store.close()


def test_rebuild_beside_the_servers_is_refused_clearly(servers: Servers) -> None:
    """``segmint rebuild`` replaces the trait state the servers hold and save every second:
    beside them it failed half-way with a serialisation error, or their next saves wrote
    over it. It now says to stop them first, and changes nothing."""
    store = servers.store()
    try:
        before = store.fetchall("SELECT count(*), max(updated_at) FROM trait_state")
        cmd = [sys.executable, "-m", "segmint", "-w", str(servers.ws), "rebuild"]
        result = subprocess.run(cmd, capture_output=True, text=True, env=servers.env,
                                timeout=120)  # fmt: skip
        assert result.returncode == 1
        assert "a real-time server ('segmint serve') is running" in result.stderr
        assert "stop the servers" in result.stderr and "Traceback" not in result.stderr
        assert store.fetchall("SELECT count(*), max(updated_at) FROM trait_state") == before
    finally:
        store.close()
