"""After ``segmint serve`` stops (SIGTERM, SIGINT, ``kill -9``) every command sees the same data.

A real server process on a DuckDB workspace receives identifies with ``first_name`` and is
stopped right away; then ``profile show`` (computed from the events), ``template preview``
and a dry-run ``campaign send`` (reading ``trait_values``) and ``segments show`` (reading
memberships) must agree on every profile.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from segmint.clock import FixedClock
from segmint.intake.keys import create_key
from segmint.intake.pipeline import Intake
from segmint.store import write_meta
from segmint.traits import SEQ_KEY
from segmint.workspace import Workspace

from ..conftest import CliResult
from .conftest import NOW
from .test_kill9 import free_port, wait_ready

PEOPLE = 12
EXTRA = """
  named: {rule: "first_name is not null"}
"""
CAMPAIGN = """
  hello: {segment: named, template: lifecycle, from: "Shop <shop@example.com>", topic: offers}
"""


def make_workspace(root: Path) -> tuple[Path, str]:
    """A scaffolded workspace with a segment and a campaign everyone identified enters."""
    path = root / "ws"
    with Workspace.init(path, name="stop") as ws:
        _, key = create_key(ws.store, "web", now=NOW)
    yaml = path / "segmint.yaml"
    text = yaml.read_text()
    text = text.replace("segments:\n", "segments:" + EXTRA, 1)
    text = text.replace("campaigns:\n", "campaigns:" + CAMPAIGN, 1)
    yaml.write_text(text)
    return path, key


def serve_and_stop(path: Path, key: str, stop: signal.Signals) -> int:
    """Start ``segmint serve``, identify PEOPLE people, send ``stop`` at once; the exit code."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "segmint", "-w", str(path), "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(url, proc)
        with httpx.Client(base_url=url, auth=(key, ""), timeout=10) as client:
            for i in range(PEOPLE):
                body = {
                    "userId": f"u{i}",
                    "traits": {
                        "first_name": f"Name{i}",
                        "email": f"u{i}@example.org",
                        "email_consent": True,
                    },
                }
                response = client.post("/v1/identify", content=orjson.dumps(body))
                assert response.status_code == 200, response.text
        os.kill(proc.pid, stop)
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def assert_commands_agree(path: Path, cli: Callable[..., CliResult], tmp: Path) -> None:
    """Every reading command sees each person's first name and segment."""
    w = ("-w", str(path))
    ids = {}
    for i in range(PEOPLE):
        shown = cli(*w, "profile", "show", f"user_id:u{i}", "--format", "json")
        assert shown.returncode == 0, shown.stderr
        view = json.loads(shown.stdout)
        traits = {t["name"]: t["value"] for t in view["traits"]}
        assert traits["first_name"] == f"Name{i}"
        ids[view["profile_id"]] = f"Name{i}"
    for pid, name in ids.items():
        out = tmp / "previews"
        result = cli(*w, "template", "preview", "lifecycle", "--profile", pid, "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert f"Hi {name}," in (out / f"{pid}.html").read_text()
    size = json.loads(cli(*w, "segments", "show", "named", "--format", "json").stdout)["size"]
    assert size == PEOPLE
    dry = cli(*w, "campaign", "send", "hello", "--dry-run", "--out", str(tmp / "dry"),
              "--format", "json")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert (report["audience"], report["skipped"], report["failed"]) == (PEOPLE, {}, {})
    assert len(list((tmp / "dry").rglob("*.eml"))) == PEOPLE  # one message each, none skipped


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_graceful_stop_saves_and_exits_0(
    tmp_path: Path,
    cli: Callable[..., CliResult],
    stop: signal.Signals,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEGMINT_SECRET", "a-test-secret-of-enough-length")
    path, key = make_workspace(tmp_path)
    assert serve_and_stop(path, key, stop) == 0
    with Workspace.open(path) as ws:  # saved by the server itself, not caught up later
        rows = ws.store.fetchall("SELECT count(*) FROM trait_values")
        assert rows[0][0] == PEOPLE
        marks = dict(ws.store.fetchall("SELECT key, value FROM meta"))
        assert marks.get("trait_state.unsaved") == "0"
        assert marks.get("realtime.serving") == "0"
    assert_commands_agree(path, cli, tmp_path)


def test_after_kill_9_every_command_catches_up_first(
    tmp_path: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMINT_SECRET", "a-test-secret-of-enough-length")
    path, key = make_workspace(tmp_path)
    assert serve_and_stop(path, key, signal.SIGKILL) == -signal.SIGKILL
    assert_commands_agree(path, cli, tmp_path)


def test_serve_refuses_bad_options_before_doing_anything(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    path, _ = make_workspace(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = str(busy.getsockname()[1])
        cases = [
            (("--port", taken), "cannot listen on 127.0.0.1:" + taken),
            (("--port", "99999"), "not in the range"),
            (("--host", "300.1.1.1"), "cannot listen on 300.1.1.1"),
            (("--log-level", "loud"), "'loud' is not one of"),
        ]
        for args, says in cases:
            result = cli("-w", str(path), "serve", *args)
            assert result.returncode == 2, result
            assert says in result.stderr


def test_a_signal_while_catching_up_at_start_exits_0_and_the_next_command_finishes(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    path, _ = make_workspace(tmp_path)
    people, events = 1000, 30_000
    with Workspace.open(path) as ws:  # stored while no server ran (an import, a stream)
        intake = Intake(ws, FixedClock(NOW))
        messages = [
            {"type": "identify", "userId": f"u{i % people}", "messageId": f"m{i}",
             "traits": {"first_name": f"Name{i % people}"}, "timestamp": NOW.isoformat()}
            for i in range(events)
        ]  # fmt: skip
        for start in range(0, events, 5000):
            intake.submit(messages[start : start + 5000], source="import")
        with ws.store.transaction():
            write_meta(ws.store, SEQ_KEY, "0")  # a server saved before these arrived
    cmd = [sys.executable, "-m", "segmint", "-w", str(path), "serve", "--port", str(free_port())]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # after the first chunk of the catch-up
        assert first.startswith("applying stored events to segments: 5,000 of 30,000"), first
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(30)
        rest = proc.stderr.read()
        assert code == 0, first + rest
        assert "segmint stopped by SIGTERM while starting" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    w = ("-w", str(path))
    size = json.loads(cli(*w, "segments", "show", "named", "--format", "json").stdout)["size"]
    assert size == people
    shown = json.loads(cli(*w, "profile", "show", "user_id:u7", "--format", "json").stdout)
    out = tmp_path / "previews"
    cli(*w, "template", "preview", "lifecycle", "--profile", shown["profile_id"], "--out", str(out))
    assert "Hi Name7," in (out / f"{shown['profile_id']}.html").read_text()


def test_a_stop_signal_ends_the_servers_duties_at_once() -> None:
    # the journeys, webhooks and time transitions stop when the signal arrives, not after
    # uvicorn has answered the requests under way (a next leader may be taking them over)
    import uvicorn

    from segmint.cli.intake_cmd import _graceful_server_class

    stopped: list[bool] = []
    server = _graceful_server_class(lambda: stopped.append(True))(uvicorn.Config(app=None))
    server.handle_exit(signal.SIGINT, None)
    assert stopped == [True] and server.should_exit
