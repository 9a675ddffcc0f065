from __future__ import annotations

from pathlib import Path

import pytest

from segmint.workspace import Workspace

SHOP = """
name: gov
traits:
  email: {from: identify, type: string}
  first_name: {from: identify, type: string}
  orders: {count: events, event: Order Completed}
  lifetime_value: {sum: properties.total, event: Order Completed}
  last_purchase_at: {last: timestamp, event: Order Completed}
  opens_30d: {count: events, event: Email Opened, within: 30d}
segments:
  buyers: {rule: "orders >= 1"}
  big: {rule: "lifetime_value >= 500", group: tier, priority: 10}
  small: {default: true, group: tier}
  recent: {rule: "last_purchase_at >= now() - interval '10 days'"}
  engaged: {rule: "opens_30d >= 2"}
  promo:
    rule: "orders >= 1"
    lifespan: 2026-03-20
"""


def make(root: Path, text: str = SHOP, name: str = "ws") -> Workspace:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "segmint.yaml").write_text(text)
    return Workspace.open(folder)


@pytest.fixture
def gov(tmp_path: Path) -> Workspace:
    ws = make(tmp_path)
    yield ws
    ws.close()
