"""Write a screenshot of each console page to docs/screenshots/ (``make screenshots``).

Builds a small demo shop, serves it with ``segmint ui`` and drives Debian's headless
Chromium with the same no-network flags as the browser tests.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from conftest import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, free_port

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from segmint.clock import SystemClock
    from segmint.intake.keys import create_key
    from segmint.workspace import Workspace

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shop"
        cmd = [sys.executable, "-m", "segmint", "demo", "--customers", "2000",
               "--dir", str(folder), "--out", str(Path(tmp) / "out")]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with Workspace.open(folder) as ws:
            _, key = create_key(ws.store, "screens", scopes=("admin",), now=SystemClock().now())
            (pid,) = ws.store.fetchall(
                "SELECT profile_id FROM memberships WHERE segment = 'vip' ORDER BY profile_id "
                "LIMIT 1"
            )[0]
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "segmint", "-w", str(folder), "ui", "--port", str(port)]
        )
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, "--window-size=1400,1000"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_up(url)
            shoot(driver, url, key, pid)
        finally:
            driver.quit()
            server.terminate()
            server.wait(30)


def _wait_up(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("segmint ui did not start")


def shoot(driver: Any, url: str, key: str, pid: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/ui/login")
    driver.save_screenshot(str(OUT / "login.png"))
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login").click()
    time.sleep(0.5)
    _whole_page(driver)
    driver.save_screenshot(str(OUT / "segments.png"))
    pages = {
        "segment": "/ui/segments/vip",
        "builder": "/ui/builder?segment=high_value",
        "profile": f"/ui/profiles/{pid}",
        "email": f"/ui/profiles/{pid}/email?template=lifecycle",
        "dashboards": "/ui/dashboards",
    }
    for name, path in pages.items():
        driver.set_window_size(1400, 1000)
        driver.get(url + path)
        time.sleep(1.0)  # the builder's first preview, the email frames
        _whole_page(driver)
        driver.save_screenshot(str(OUT / f"{name}.png"))
        print(f"wrote {OUT / f'{name}.png'}")


def _whole_page(driver: Any) -> None:
    """Make the window as tall as the page (the overlap heatmap sits below the table)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(1000, min(int(height) + 140, 3000)))


if __name__ == "__main__":
    main()
