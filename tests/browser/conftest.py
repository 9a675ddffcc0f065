"""Headless Chromium (Debian's), the npm browser libraries, page servers and segmint serve.

The browser never reaches beyond this machine: every host name resolves to nothing except
127.0.0.1, and a dead proxy stands in front of everything else. Without Chromium, its driver,
selenium or the npm packages (``.ci/run`` installs them all) these tests skip with the
reason, or fail when ``SEGMINT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).parent
MODULES = HERE / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BUNDLES = {
    "analytics-next.js": MODULES / "@segment/analytics-next/dist/umd/standalone.js",
    "rudderstack.js": MODULES / "@rudderstack/analytics-js/dist/npm/modern/bundled/umd/index.js",
}
"""The standalone builds the pages load, served by the page server (no CDN)."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
)
SEGMENT_RULE = "performed('Product Viewed')"


def _missing_chromium() -> str | None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        return "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def _missing() -> str | None:
    found = _missing_chromium()
    if found is not None:
        return found
    absent = [str(p.relative_to(HERE)) for p in BUNDLES.values() if not p.exists()]
    if absent:
        return f"npm packages missing: {', '.join(absent)} (npm install --prefix tests/browser)"
    return None


def _require(reason: str | None) -> None:
    if reason is None:
        return
    if os.environ.get("SEGMINT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"browser tests cannot run: {reason} (SEGMINT_REQUIRE_SERVICES=1)")
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Skip (or fail in CI) when the browser set-up is missing."""
    _require(_missing())


@pytest.fixture(scope="session")
def chromium_ready() -> None:
    """Skip (or fail in CI) without Chromium, its driver or selenium (no npm bundles needed)."""
    _require(_missing_chromium())


@pytest.fixture(scope="module")
def driver(browser_ready: None) -> Iterator[Any]:
    """One headless Chromium for the module, kept on this machine."""
    yield from _chromium()


@pytest.fixture(scope="module")
def chromium(chromium_ready: None) -> Iterator[Any]:
    """One headless Chromium for the module (pages that load no npm bundle)."""
    yield from _chromium()


def _chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must fetch nothing
    chrome = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    chrome.set_script_timeout(20)
    try:
        yield chrome
    finally:
        chrome.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@dataclass
class PageServer:
    """A web site on its own origin serving ``root`` (the pages and the JS bundles)."""

    root: Path
    server: ThreadingHTTPServer

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def page(self, name: str, text: str) -> str:
        (self.root / name).write_text(text, encoding="utf-8")
        return f"{self.origin}/{name}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PageServer]:
    yield from _site(tmp_path / "site")


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[PageServer]:
    yield from _site(tmp_path / "other")


def _site(root: Path) -> Iterator[PageServer]:
    (root / "js").mkdir(parents=True)
    for name, source in BUNDLES.items():
        if source.exists():
            shutil.copy(source, root / "js" / name)
    handler = partial(Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield PageServer(root, server)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Segmint:
    """A ``segmint serve`` process over a workspace with a public key for ``site``."""

    folder: Path
    url: str
    key: str
    read_key: str
    proc: subprocess.Popen[bytes]
    log: Path

    def segments_of(self, user_id: str) -> list[str]:
        r = httpx.get(f"{self.url}/v1/profiles/{user_id}/segments", params={"by": "user_id"},
                      auth=(self.read_key, ""), timeout=5)  # fmt: skip
        return list(r.json()["segments"]) if r.status_code == 200 else []

    def wait_for_segment(self, user_id: str, segment: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if segment in self.segments_of(user_id):
                return
            time.sleep(0.2)
        raise AssertionError(f"{user_id} did not enter {segment} within {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def cli(self, *args: str) -> str:
        cmd = [sys.executable, "-m", "segmint", "-w", str(self.folder), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def segmint(tmp_path: Path, site: PageServer, browser_ready: None) -> Iterator[Segmint]:
    from segmint.clock import SystemClock
    from segmint.intake.keys import create_key
    from segmint.workspace import Workspace

    folder = tmp_path / "ws"
    Workspace.init(folder, name="browser-shop").close()
    yaml = folder / "segmint.yaml"
    text = yaml.read_text(encoding="utf-8")
    viewers = f'segments:\n  product_viewers:\n    rule: "{SEGMENT_RULE}"\n'
    yaml.write_text(text.replace("segments:\n", viewers, 1), encoding="utf-8")
    with Workspace.open(folder) as ws:
        now = SystemClock().now()
        _, key = create_key(ws.store, "site", now=now, origins=(site.origin,))
        _, read = create_key(ws.store, "checks", scopes=("read",), now=now)
    port = free_port()
    cmd = [sys.executable, "-m", "segmint", "-w", str(folder), "serve", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sink)
    server = Segmint(folder, f"http://127.0.0.1:{port}", key, read, proc, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


def _wait_ready(server: Segmint) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"segmint serve exited: {server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("segmint serve did not start")


def console(driver: Any) -> str:
    """The browser console so far, to explain a failure."""
    return "\n".join(str(entry.get("message")) for entry in driver.get_log("browser"))
