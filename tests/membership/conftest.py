from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.batch import refresh
from segmint.membership.compiled import CompiledSegments
from segmint.membership.realtime import RealtimeEngine
from segmint.workspace import Workspace


@dataclass
class Receiver:
    """A real local HTTP server recording webhook deliveries; fails the first N of them."""

    url: str
    fail_times: int = 0
    fail_status: int = 503
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0

    def changes(self) -> list[int]:
        """The change ids of the deliveries received (each body's ``id``)."""
        return [int(json.loads(body)["id"]) for _, body in list(self.received)]


def serve_receiver(state: Receiver) -> Callable[[], None]:
    """Serve ``state`` on a free local port (its ``url`` is set); return how to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.attempts += 1
            if state.attempts <= state.fail_times:
                self.send_response(state.fail_status)
                self.end_headers()
                self.wfile.write(b"not now")
                return
            state.received.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    stop = serve_receiver(state)
    yield state
    stop()


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SHOP = """
name: shop
traits:
  email: {from: identify, type: string}
  orders: {count: events, event: Order Completed}
  lifetime_value: {sum: properties.total, event: Order Completed}
  last_purchase_at: {last: timestamp, event: Order Completed}
  opens_30d: {count: events, event: Email Opened, within: 30d}
  days_since_purchase: {expr: "days_since(last_purchase_at)", type: number}
segments:
  recent_buyer: {rule: "last_purchase_at >= now() - interval '30 days'"}
  engaged: {rule: "opens_30d >= 3"}
  vip: {rule: "lifetime_value >= 1000", group: lifecycle, priority: 100}
  repeat: {rule: "orders >= 2", group: lifecycle, priority: 50}
  lapsed: {rule: "days_since_purchase > 60", group: lifecycle, priority: 10}
  prospect: {default: true, group: lifecycle}
  big_recent: {rule: "lifetime_value >= 500", parent: recent_buyer}
  vip_engaged: {rule: "in_segment('vip') and in_segment('engaged')"}
  browsers:
    rule: "performed('Product Viewed', within => '7 days') and not performed('Order Completed')"
"""


def _make_workspace(root: Path, text: str = SHOP, store: Any = None) -> Workspace:
    folder = root / "ws"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "segmint.yaml").write_text(text)
    ws = Workspace.open(folder)
    if store is not None:
        ws._store = store
    return ws


@dataclass
class Rig:
    """A workspace with intake and the real-time engine wired, on a fixed clock."""

    ws: Workspace
    clock: FixedClock
    intake: Intake
    compiled: CompiledSegments
    engine: RealtimeEngine

    def send(self, *messages: dict[str, Any]) -> None:
        self.intake.submit(list(messages), source="test")

    def at(self, when: datetime) -> None:
        self.clock.set(when)
        self.engine.advance(when)


def _make_rig(ws: Workspace, at: datetime = T0) -> Rig:
    clock = FixedClock(at)
    intake = Intake(ws, clock)
    compiled = CompiledSegments(ws.definition)
    engine = RealtimeEngine(ws.store, compiled, clock)
    intake.add_listener(engine)
    return Rig(ws, clock, intake, compiled, engine)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    ws = _make_workspace(tmp_path)
    yield _make_rig(ws)
    ws.close()


@pytest.fixture
def make_workspace():
    return _make_workspace


@pytest.fixture
def make_rig():
    return _make_rig


@pytest.fixture
def shop_yaml() -> str:
    return SHOP


@pytest.fixture(name="track")
def track_fixture():
    return _track


_counter = iter(range(10**9))


def _track(user: str, event: str, at: datetime, **props: Any) -> dict[str, Any]:
    return {
        "type": "track", "userId": user, "event": event, "properties": props,
        "timestamp": at.isoformat(), "messageId": f"m{next(_counter)}",
    }  # fmt: skip


def stored(store: Any, segment: str | None = None) -> set[tuple[str, str]]:
    """The stored memberships as (profile, segment) pairs, of one segment or all."""
    rows = store.fetchall("SELECT profile_id, segment FROM memberships")
    return {(p, s) for p, s in rows if segment is None or s == segment}


@pytest.fixture
def shop(tmp_path: Path, store: Any) -> tuple[Workspace, CompiledSegments]:
    """The shop above (groups, a default, a parent, in_segment, performed), refreshed at T0."""
    ws = _make_workspace(tmp_path, store=store)
    day = timedelta(days=1)
    Intake(ws, FixedClock(T0)).submit(
        [
            # matches vip, repeat and (70 days after its last order) lapsed: vip wins
            _track("vip", "Order Completed", T0 - 70 * day, total=900),
            _track("vip", "Order Completed", T0 - 69 * day, total=900),
            _track("rep", "Order Completed", T0 - 2 * day, total=10),
            _track("rep", "Order Completed", T0 - day, total=600),
            _track("new", "Product Viewed", T0 - day),
            *[_track("rep", "Email Opened", T0 - d * day) for d in (1, 2, 3)],
            {"type": "identify", "userId": "rep", "traits": {"email": "r@x.io"},
             "timestamp": (T0 - day).isoformat(), "messageId": "id-rep"},
        ],
        source="test",
    )  # fmt: skip
    compiled = CompiledSegments(ws.definition)
    refresh(ws.store, compiled, T0)
    return ws, compiled


def deploy_step(
    ws: Workspace,
    compiled: CompiledSegments,
    now: datetime,
    messages: list[dict[str, Any]],
    mode: str,
) -> None:
    """Take ``messages`` at ``now`` under ``compiled``, as a deploy would: by a batch refresh
    (``mode == "refresh"``) or by a real-time engine that starts (catching up), runs, stops."""
    clock = FixedClock(now)
    intake = Intake(ws, clock)
    if mode == "refresh":
        if messages:
            intake.submit(messages, source="test")
        refresh(ws.store, compiled, now)
        return
    engine = RealtimeEngine(ws.store, compiled, clock)
    engine.catch_up(now)
    engine.advance(now)
    intake.add_listener(engine)
    if messages:
        intake.submit(messages, source="test")
    engine.close()


def live_views(ws: Workspace) -> dict[str, int]:
    """Per profile, the ``views`` count its stored trait values hold (real time's answer)."""
    import json

    rows = ws.store.fetchall('SELECT profile_id, "values" FROM trait_values')
    found = {pid: json.loads(v) if isinstance(v, str) else v for pid, v in rows}
    return {pid: int(v["views"]) for pid, v in found.items() if v.get("views")}


def stored_views(ws: Workspace) -> dict[str, int]:
    """Per profile, how many events the store holds (every event there is a view)."""
    rows = ws.store.fetchall("SELECT profile_id, count(*) FROM events GROUP BY profile_id")
    return {str(pid): int(n) for pid, n in rows}


def erasure_rig(ws: Workspace, track: Any, total: float) -> tuple[RealtimeEngine, Intake]:
    """A server's real-time engine on ``ws`` (state saved hourly) and its intake: Ada
    identified with her email and one order of ``total``, Bob one order of 10, and the
    state of both saved (for the erasure tests)."""
    from segmint.membership.service import Membership

    clock = FixedClock(T0)
    engine = Membership(ws).realtime(clock, checkpoint_every=3600)
    intake = Intake(ws, clock)
    intake.add_listener(engine)
    who = {"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com"},
           "timestamp": T0.isoformat(), "messageId": "id-ada"}  # fmt: skip
    intake.submit([who, track("ada", "Order Completed", T0, total=total)], source="test")
    intake.submit([track("bob", "Order Completed", T0, total=10)], source="test")
    engine.checkpoint()
    return engine, intake


def held(store: Any, pid: str, tables: tuple[str, ...]) -> dict[str, int]:
    """The rows naming ``pid`` in each of ``tables``."""
    return {
        t: int(store.fetchall(f"SELECT count(*) FROM {t} WHERE profile_id = ?", [pid])[0][0])  # noqa: S608
        for t in tables
    }


def record_statements(store: Any) -> list[str]:
    """Record every statement ``store`` runs from now on (the list fills as they run)."""
    seen: list[str] = []
    for name in ("execute", "fetchall", "executemany"):
        run = getattr(store, name)

        def recording(sql: str, params: Any = (), run: Any = run) -> Any:
            seen.append(sql)
            return run(sql, params)

        setattr(store, name, recording)
    return seen
