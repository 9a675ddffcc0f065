"""Journey timers and webhooks run on the leading server only; the next leader takes over.

Two real ``segmint serve`` subprocesses share one PostgreSQL store, each from a checkout of
its own of the same workspace that differs only in where it sends: its own SMTP server and
its own webhook receiver, so every email and every webhook call says which server made it.
Events all go to the server that does not lead. While the leader runs, only its SMTP
server and receiver hear anything; once it stops, the other server takes the lead and
sends the journeys' next steps and the new changes' webhooks: each person gets every step
once, each change is delivered once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller
from tests.cli.servers import start_server, stop_server
from tests.cli.test_writes_while_serving import SECRET, _without_journeys
from tests.deliver.conftest import RecordingHandler, free_port
from tests.membership.conftest import Receiver, serve_receiver

pytestmark = pytest.mark.postgres
WAIT = 30
"""Seconds between a journey's two sends: the leader stops within them."""
JOURNEY = f"""
journeys:
  onboarding:
    trigger: {{event: Signed Up}}
    from: "Example Shop <shop@example.com>"
    steps:
      - {{name: hello, send: lifecycle, topic: newsletter}}
      - {{name: pause, wait: {WAIT}s}}
      - {{name: again, send: lifecycle, topic: newsletter}}
"""
PEOPLE = ("ada", "bob", "cy")


@dataclass
class Side:
    """One server's workspace checkout, SMTP server and webhook receiver."""

    ws: Path
    smtp: RecordingHandler
    hooks: Receiver
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None


def _until(check: Callable[[], Any], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[Side, Side, dict[str, str]]]:
    from tests.conftest import postgres_schema

    dropped = contextlib.ExitStack()
    _, url = dropped.enter_context(postgres_schema("t_duties"))
    env = {**os.environ, "SEGMINT_DATABASE_URL": url, "SEGMINT_SECRET": SECRET,
           "SEGMINT_WEBHOOK_SECRET": "hook-secret"}  # fmt: skip
    first = tmp_path / "a"
    subprocess.run([sys.executable, "-m", "segmint", "init", str(first)], check=True,
                   capture_output=True, env=env)  # fmt: skip
    text = _without_journeys((first / "segmint.yaml").read_text())
    text = text.replace("policy: opt_in", "policy: opt_out")
    shutil.copytree(first, tmp_path / "b")
    stops: list[Callable[[], None]] = []
    made = []
    for folder in (first, tmp_path / "b"):
        handler, port = RecordingHandler(), free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        stops.append(controller.stop)
        hooks = Receiver(url="")
        stops.append(serve_receiver(hooks))
        mine = text.replace("port: 1025", f"port: {port}")
        mine += JOURNEY + f"\nwebhooks:\n  crm: {{url: '{hooks.url}'}}\n"
        (folder / "segmint.yaml").write_text(mine)
        made.append(Side(folder, handler, hooks))
    try:
        yield made[0], made[1], env
    finally:
        for side in made:
            if side.proc is not None and side.proc.poll() is None:
                stop_server(side.proc)
        for stop in stops:
            stop()
        dropped.close()


def _post(side: Side, key: str, path: str, body: dict[str, Any]) -> None:
    answer = httpx.post(f"http://127.0.0.1:{side.port}{path}", json=body, auth=(key, ""),
                        timeout=10)  # fmt: skip
    assert answer.status_code == 200, answer.text


def test_only_the_leader_sends_and_the_next_one_takes_over(
    sides: tuple[Side, Side, dict[str, str]],
) -> None:
    leader, other, env = sides
    for side in (leader, other):  # the first started takes the lead
        side.port = free_port()
        side.proc = start_server(side.ws, side.port, env)
    created = subprocess.run(
        [sys.executable, "-m", "segmint", "-w", str(other.ws), "keys", "create", "--name", "t"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    key = next(w for w in created if w.startswith("sgm_"))
    for name in PEOPLE:  # to the server that does not lead
        who = {"userId": name, "messageId": f"id-{name}", "traits": {"email": f"{name}@x.io"}}
        _post(other, key, "/v1/identify", who)
        _post(other, key, "/v1/track", {"userId": name, "event": "Signed Up",
                                         "messageId": f"up-{name}"})  # fmt: skip
    _until(lambda: leader.smtp.count() == len(PEOPLE), "the leader sends the first step")
    _until(lambda: leader.hooks.changes(), "the leader delivers the webhooks")
    assert other.smtp.count() == 0 and other.hooks.changes() == []
    assert leader.proc is not None
    stop_server(leader.proc)  # within the journey's wait
    for name in PEOPLE:  # changes (vip) the new leader must deliver
        _post(other, key, "/v1/track", {"userId": name, "event": "Order Completed",
                                         "messageId": f"order-{name}",
                                         "properties": {"total": 1500}})  # fmt: skip
    _until(lambda: other.smtp.count() == len(PEOPLE), "the new leader sends the next step",
           seconds=WAIT + 90)  # fmt: skip
    time.sleep(3)  # nothing more comes
    sent = [r.recipients[0] for side in (leader, other) for r in side.smtp.received]
    assert sorted(sent) == sorted(f"{n}@x.io" for n in PEOPLE for _ in range(2))
    assert other.smtp.count() == len(PEOPLE)

    with psycopg.connect(env["SEGMINT_DATABASE_URL"]) as con:
        changes = [int(r[0]) for r in con.execute("SELECT id FROM membership_changes")]

    def delivered() -> bool:
        return sorted(leader.hooks.changes() + other.hooks.changes()) == sorted(changes)

    _until(delivered, "every change reaches a webhook receiver once")
    assert any(c not in leader.hooks.changes() for c in changes)  # the new leader's own
