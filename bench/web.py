"""The console and the rule preview: page loads on the demo shop, previews on many profiles.

Figures:
- page load p95 of the segments list (with its sparklines and overlap heatmap), of a
  profile page and of the dashboards (``segmint ui`` over the
  20k-customer demo shop, 40 loads each, logged in with an admin key; goal p95 < 200 ms);
  the baseline is ``/healthz`` on the same server in the same run (the floor of a request);
- ``POST /v1/segments/preview`` for ``lifetime_value >= 500 and performed('Page Viewed',
  within => '30 days')`` on generated events (100k profiles / 1M events by default;
  SEGMINT_BENCH_SCALE=1: 1M profiles / 10M events; goal < 1 s), through the Python API
  (:func:`segmint.membership.preview.preview_rule`, as the endpoint calls it); the baseline
  is one hand-written DuckDB statement counting the same profiles.

Set SEGMINT_BENCH_DEMO to an existing demo folder to skip building the demo shop.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from common import best_of, free_port, report, start_serving
from traits import GENERATE

FULL = os.environ.get("SEGMINT_BENCH_SCALE") == "1"
PROFILES = 1_000_000 if FULL else 100_000
EVENTS = 10_000_000 if FULL else 1_000_000
LOADS = 40
RULE = "lifetime_value >= 500 and performed('Page Viewed', within => '30 days')"
AS_OF = datetime(2024, 7, 1, tzinfo=UTC)
WORKSPACE = """
name: bench
traits:
  lifetime_value: {sum: properties.total, event: Order Completed}
segments:
  buyers: {rule: "lifetime_value > 0"}
"""
HAND = """
SELECT count(*) FROM (
  SELECT profile_id FROM events WHERE timestamp <= TIMESTAMP '2024-07-01'
  GROUP BY profile_id
  HAVING sum(TRY_CAST(properties->>'total' AS DOUBLE))
           FILTER (WHERE type = 'track' AND event = 'Order Completed') >= 500
     AND count(*) FILTER (WHERE type = 'track' AND event = 'Page Viewed'
           AND timestamp > TIMESTAMP '2024-07-01' - INTERVAL 30 DAY) >= 1)
"""


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def timed_loads(client: httpx.Client, path: str) -> list[float]:
    client.get(path).raise_for_status()  # warm
    out = []
    for _ in range(LOADS):
        start = time.perf_counter()
        r = client.get(path)
        out.append(time.perf_counter() - start)
        assert r.status_code == 200, (path, r.status_code)
    return out


def demo_folder(tmp: Path) -> Path:
    given = os.environ.get("SEGMINT_BENCH_DEMO")
    if given:
        return Path(given)
    folder, out = tmp / "demo-shop", tmp / "demo-out"
    cmd = [sys.executable, "-m", "segmint", "demo", "--dir", str(folder), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"demo shop built in {time.perf_counter() - start:.1f} s")
    return folder


def pages(tmp: Path) -> None:
    from segmint.clock import SystemClock
    from segmint.intake.keys import create_key
    from segmint.workspace import Workspace

    folder = demo_folder(tmp)
    with Workspace.open(folder) as ws:
        _, key = create_key(ws.store, "bench", scopes=("admin",), now=SystemClock().now())
        (pid,) = ws.store.fetchall(
            "SELECT profile_id FROM memberships WHERE segment = 'vip' ORDER BY profile_id LIMIT 1"
        )[0]
    port = free_port()
    cmd = [sys.executable, "-m", "segmint", "-w", str(folder), "ui", "--port", str(port)]
    proc = start_serving(cmd, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            form = c.get("/ui/login").text
            token = re.search(r'name="csrf" value="([^"]*)"', form).group(1)  # type: ignore[union-attr]
            c.post("/ui/login", data={"csrf": token, "key": key, "next": "/ui/segments"})
            floor = p95(timed_loads(c, "/healthz"))
            for name, path in (
                ("segments list", "/ui/segments"),
                ("profile", f"/ui/profiles/{pid}"),
                ("dashboards", "/ui/dashboards"),
            ):
                figure = p95(timed_loads(c, path))
                report(f"console {name} page p95", figure * 1000, "ms",
                       baseline=floor * 1000, baseline_name="/healthz p95",
                       ratio=figure / floor, goal="p95 < 200 ms")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


def preview(tmp: Path) -> None:
    from segmint.membership.preview import preview_rule
    from segmint.workspace import Workspace

    folder = tmp / "preview"
    folder.mkdir()
    (folder / "segmint.yaml").write_text(WORKSPACE)
    with Workspace.open(folder) as ws:
        store = ws.store
        start = time.perf_counter()
        store.execute("SELECT setseed(0.42)")
        store.execute(GENERATE.format(profiles=PROFILES, events=EVENTS))
        print(f"generated {PROFILES:,} profiles / {EVENTS:,} events in "
              f"{time.perf_counter() - start:.1f} s")  # fmt: skip
        found = preview_rule(store, ws.definition, RULE, AS_OF)
        (hand_size,) = store.fetchall(HAND)[0]
        assert found.size == hand_size, (found.size, hand_size)
        ours = best_of(lambda: preview_rule(store, ws.definition, RULE, AS_OF), 3)
        hand = best_of(lambda: store.fetchall(HAND), 3)
        report(f"rule preview on {PROFILES:,} profiles", ours * 1000, "ms",
               baseline=hand * 1000, baseline_name="hand-written DuckDB count",
               ratio=ours / hand, goal="< 1000 ms")  # fmt: skip
        print(f"  ({found.size:,} members)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        preview(Path(tmp))
        pages(Path(tmp))


if __name__ == "__main__":
    main()
