"""Fixtures for measurement: a workspace with people, sends and engagement put in through
the real intake and send ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from segmint.clock import FixedClock
from segmint.deliver.ledger import SendLedger
from segmint.intake import Intake
from segmint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@dataclass
class Shop:
    """Helpers to record what happened: identifies, sends, opens, clicks, orders."""

    workspace: Workspace
    ids: dict[str, str] = field(default_factory=dict)
    _n: int = 0

    def track(self, user: str, event: str, at: datetime, **properties: Any) -> None:
        self.submit([{"type": "track", "userId": user, "event": event,
                      "timestamp": at.isoformat(), "properties": properties}])  # fmt: skip

    def submit(self, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            self._n += 1
            m.setdefault("messageId", f"m-{self._n}")
        result = Intake(self.workspace, FixedClock(T0 + timedelta(days=400))).submit(
            messages, source="test"
        )
        for m, e in zip(messages, result.events, strict=False):
            self.ids.setdefault(m["userId"], e.profile_id)

    def person(self, user: str) -> str:
        if user not in self.ids:
            self.submit([{"type": "identify", "userId": user, "timestamp": T0.isoformat(),
                          "traits": {"email": f"{user}@example.com"}}])  # fmt: skip
        return self.ids[user]

    def sent(self, campaign: str, user: str, at: datetime, *, bounce: bool = False) -> None:
        pid = self.person(user)
        ledger = SendLedger(self.workspace.store, campaign, FixedClock(at))
        ledger.plan([pid])
        ledger.claim(pid, f"{user}@example.com", f"<{campaign}.{user}@x>")
        if bounce:
            from segmint.deliver.ledger import Bounce

            ledger.bounced(Bounce(pid, f"{user}@example.com", "hard_bounce:550", 550, at))
        else:
            ledger.sent(pid)

    def opened(self, campaign: str, user: str, at: datetime, machine: bool = False) -> None:
        self.person(user)
        self.track(user, "Email Opened", at, campaign=campaign, machine_open=machine)

    def clicked(self, campaign: str, user: str, at: datetime, machine: bool = False) -> None:
        self.person(user)
        self.track(user, "Email Link Clicked", at, campaign=campaign, url="https://x",
                   machine_click=machine)  # fmt: skip

    def ordered(self, user: str, at: datetime, total: Any) -> None:
        self.person(user)
        self.track(user, "Order Completed", at, total=total)
