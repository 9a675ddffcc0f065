"""The console in a real browser: build a segment, watch its size, save it, open a member.

``segmint serve`` runs over a workspace with ten customers (u<i> spent 300 * i over i
orders), refreshed at a fixed instant; Chromium (Debian's, headless, no network) drives the
pages. A save reaches the running real-time engine, so the new segment has members at once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import console, free_port

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Ui:
    url: str
    folder: Path
    admin_key: str


def _messages() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(10):
        out.append({"type": "identify", "userId": f"u{i}", "messageId": f"i{i}",
                    "traits": {"email": f"u{i}@example.com", "first_name": f"Ann{i}"},
                    "timestamp": (NOW - timedelta(days=60)).isoformat()})  # fmt: skip
        out += [
            {"type": "track", "userId": f"u{i}", "event": "Order Completed",
             "properties": {"total": 300.0}, "messageId": f"o{i}-{k}",
             "timestamp": (NOW - timedelta(days=5 + k)).isoformat()}
            for k in range(i)
        ]  # fmt: skip
    return out


@pytest.fixture
def ui(tmp_path: Path, chromium_ready: None) -> Iterator[Ui]:
    from segmint.clock import FixedClock
    from segmint.intake.keys import create_key
    from segmint.intake.pipeline import Intake
    from segmint.membership.service import Membership
    from segmint.workspace import Workspace

    folder = tmp_path / "ws"
    with Workspace.init(folder, name="console-shop") as ws:
        Intake(ws, FixedClock(NOW)).submit(_messages(), source="test")
        Membership(ws).refresh(NOW)
        _, key = create_key(ws.store, "ops", scopes=("admin",), now=NOW)
    port = free_port()
    log = tmp_path / "ui.log"
    cmd = [sys.executable, "-m", "segmint", "-w", str(folder), "serve", "--port", str(port)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "segmint serve did not start"
            time.sleep(0.1)
        yield Ui(url, folder, key)
    finally:
        proc.terminate()
        proc.wait(30)


def _login(driver: Any, ui: Ui, path: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{ui.url}{path}")
    driver.find_element(By.ID, "key").send_keys(ui.admin_key)
    driver.find_element(By.ID, "login").click()


def _wait(driver: Any, what: Any, timeout: float = 15) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(what)
    except Exception as exc:
        raise AssertionError(f"{exc!r}\nbrowser console:\n{console(driver)}") from None


def _size_is(expected: str) -> Any:
    from selenium.webdriver.common.by import By

    return lambda d: d.find_element(By.ID, "live-size").text == expected


def _condition(driver: Any, css: str, trait: str, op: str, value: str) -> None:
    """Fill the condition row at ``css`` (each choice redraws the builder: find it again)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    row = lambda: driver.find_element(By.CSS_SELECTOR, css)  # noqa: E731
    Select(row().find_element(By.CSS_SELECTOR, "select.trait")).select_by_value(trait)
    Select(row().find_element(By.CSS_SELECTOR, "select.op")).select_by_value(op)
    box = row().find_element(By.CSS_SELECTOR, "input.value")
    box.clear()
    box.send_keys(value)


def test_build_a_segment_see_its_size_and_save_it(chromium: Any, ui: Ui) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _login(chromium, ui, "/ui/builder")
    _wait(chromium, lambda d: d.find_elements(By.CSS_SELECTOR, "#builder .cond"))
    first = "#builder > .group > .cond"
    _condition(chromium, first, "lifetime_value", ">=", "1500")
    _wait(chromium, _size_is("5"))  # u5 … u9: 1500 … 2700
    text = chromium.find_element(By.ID, "rule-text")
    assert text.get_attribute("value") == "lifetime_value >= 1500"

    # a nested group: … and (orders < 1) is nobody; switched to OR it adds u0
    chromium.find_element(By.CSS_SELECTOR, "#builder .group-head .add-group").click()
    _condition(chromium, "#builder .group .group .cond", "orders", "<", "1")
    _wait(chromium, _size_is("0"))
    assert text.get_attribute("value") == "lifetime_value >= 1500 and orders < 1"
    connective = chromium.find_element(By.CSS_SELECTOR, "#builder select.connective")
    Select(connective).select_by_value("or")
    _wait(chromium, _size_is("6"))
    assert text.get_attribute("value") == "lifetime_value >= 1500 or orders < 1"

    # the text view drives the builder too
    text.clear()
    text.send_keys("orders >= 8 and not (email is null)")
    _wait(chromium, _size_is("2"))
    _wait(chromium, lambda d: d.find_elements(By.CSS_SELECTOR, "#builder .group.negated"))
    traits = [
        Select(s).first_selected_option.text
        for s in chromium.find_elements(By.CSS_SELECTOR, "#builder select.trait")
    ]
    assert traits == ["orders", "email"]

    chromium.find_element(By.ID, "seg-name").send_keys("heavy_buyers")
    chromium.find_element(By.ID, "seg-description").send_keys("Eight orders or more")
    chromium.find_element(By.ID, "save").click()
    _wait(chromium, lambda d: d.find_elements(By.ID, "saved-link"))
    saved = (ui.folder / "segmint.yaml").read_text(encoding="utf-8")
    assert (
        '  heavy_buyers:\n    rule: "orders >= 8 and not email is null"\n'
        "    description: Eight orders or more\n"
    ) in saved
    chromium.find_element(By.ID, "saved-link").click()
    _wait(
        chromium,
        lambda d: d.find_element(By.ID, "rule").text == "orders >= 8 and not email is null",
    )

    # the running server decided the new segment at the save: open a member, see why
    member = _wait(chromium, lambda d: d.find_element(By.CSS_SELECTOR, "#members a"))
    member.click()
    css = '#why tr[data-segment="heavy_buyers"]'
    why = _wait(chromium, lambda d: d.find_element(By.CSS_SELECTOR, css))
    assert why.find_element(By.CSS_SELECTOR, ".member").text == "yes"
    assert "orders >= 8" in why.text and "true" in why.text
    chromium.find_element(By.ID, "preview-email").click()
    subject = _wait(chromium, lambda d: d.find_element(By.ID, "subject"))
    assert subject.text
    frame = chromium.find_element(By.CSS_SELECTOR, "iframe.mobile")
    assert frame.size["width"] == 375
    chromium.switch_to.frame(frame)
    assert "Ann" in chromium.find_element(By.TAG_NAME, "body").text
    chromium.switch_to.default_content()


def test_segment_sizes_over_time_overlap_and_dashboards(chromium: Any, ui: Ui) -> None:
    from selenium.webdriver.common.by import By

    _login(chromium, ui, "/ui/segments")
    row = _wait(chromium, lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-segment="vip"]'))
    assert row.find_element(By.CSS_SELECTOR, ".size").text == "6"
    spark = row.find_element(By.CSS_SELECTOR, "svg.spark")
    assert spark.get_attribute("aria-label").endswith("highest 6")
    assert spark.find_elements(By.TAG_NAME, "polyline")
    cell = chromium.find_element(By.CSS_SELECTOR, '#overlap rect[data-pair="high_value|vip"]')
    title = cell.find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert cell.size["width"] > 20 and "shared" in title
    chromium.find_element(By.LINK_TEXT, "Dashboards").click()
    journeys = _wait(chromium, lambda d: d.find_element(By.ID, "journeys"))
    rows = journeys.find_elements(By.CSS_SELECTOR, "tr[data-journey]")
    assert [r.get_attribute("data-journey") for r in rows] == [
        "abandoned_cart", "welcome_series", "win_back",
    ]  # fmt: skip
    assert journeys.find_elements(By.CSS_SELECTOR, "svg.bars")
    assert chromium.find_element(By.ID, "campaigns").is_displayed()
    assert chromium.find_element(By.ID, "experiments").is_displayed()
