"""Journey fixtures: the example workspace (its journeys) wired to a real aiosmtpd server."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from segmint.clock import FixedClock
from segmint.journeys import JourneyEngine
from segmint.workspace import Workspace

_spec = importlib.util.spec_from_file_location(
    "deliver_fixtures", Path(__file__).parent.parent / "deliver" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
deliver = importlib.util.module_from_spec(_spec)
sys.modules["deliver_fixtures"] = deliver  # (dataclasses look their module up)
_spec.loader.exec_module(deliver)
smtp_server = deliver.smtp_server  # the real SMTP server the delivery tests use
unused_port = deliver.unused_port
SECRET = deliver.SECRET
T0 = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)  # a Monday, mid-morning UTC


@dataclass
class Shop:
    """A workspace with journeys, its SMTP server, and helpers to record events."""

    path: Path
    server: Any
    workspace: Workspace
    profiles: dict[str, str] = field(default_factory=dict)

    def submit(self, messages: list[dict[str, Any]], at: datetime = T0) -> list[str]:
        from segmint.intake import Intake

        result = Intake(self.workspace, FixedClock(at)).submit(messages, source="test")
        return [e.profile_id for e in result.events]

    def person(self, user: str, at: datetime = T0, **traits: Any) -> str:
        values = {"email": f"{user}@example.com", "first_name": user.title(),
                  "email_consent": True, **traits}  # fmt: skip
        pid = self.submit(
            [{"type": "identify", "userId": user, "traits": values,
              "timestamp": (at.replace(microsecond=0) - _HOUR).isoformat()}], at
        )[0]  # fmt: skip
        self.profiles[user] = pid
        self._values(pid, values, at)
        return pid

    def people(self, users: list[str], at: datetime = T0) -> list[str]:
        messages = [
            {"type": "identify", "userId": u, "timestamp": (at - _HOUR).isoformat(),
             "traits": {"email": f"{u}@example.com", "email_consent": True}}
            for u in users
        ]  # fmt: skip
        pids = self.submit(messages, at)
        self.profiles.update(zip(users, pids, strict=True))
        for user, pid in zip(users, pids, strict=True):
            self._values(pid, {"email": f"{user}@example.com"}, at)
        return pids

    def _values(self, pid: str, values: dict[str, Any], at: datetime) -> None:
        import orjson

        store = self.workspace.store
        with store.transaction():
            store.execute("DELETE FROM trait_values WHERE profile_id = ?", [pid])
            store.execute(
                'INSERT INTO trait_values (profile_id, "values", as_of) VALUES (?, ?, ?)',
                [pid, orjson.dumps(values).decode(), at.replace(tzinfo=None)],
            )

    def track(self, user: str, event: str, at: datetime, **props: Any) -> None:
        self.submit([{"type": "track", "userId": user, "event": event, "properties": props,
                      "timestamp": at.isoformat()}], at)  # fmt: skip

    def engine(self, **options: Any) -> JourneyEngine:
        return JourneyEngine(self.workspace, FixedClock(T0), **options)

    def received(self) -> dict[str, int]:
        return dict(self.server.handler.by_recipient())

    def reopen(self) -> Workspace:
        self.workspace.close()
        self.workspace = Workspace.open(self.path)
        return self.workspace


_HOUR = datetime(2000, 1, 1, 1, tzinfo=UTC) - datetime(2000, 1, 1, tzinfo=UTC)


def edit(path: Path, old: str, new: str) -> None:
    """Replace one text of ``segmint.yaml`` (it must be there)."""
    yaml_file = path / "segmint.yaml"
    text = yaml_file.read_text()
    assert old in text, old
    yaml_file.write_text(text.replace(old, new, 1))


@pytest.fixture
def shop(tmp_path: Path, smtp_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    """``segmint init``'s example (with its journeys) sending to the test SMTP server."""
    monkeypatch.setenv("SEGMINT_SECRET", SECRET)
    path = tmp_path / "shop"
    Workspace.init(path, name="journey-shop").close()
    deliver.configure(path, smtp_server.port, pool=2)
    item = Shop(path, smtp_server, Workspace.open(path))
    yield item
    item.workspace.close()
