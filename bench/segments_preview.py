"""``segmint segments preview "RULE"`` on 1M profiles (goal < 1 s).

Figures (1,000,000 profiles / 10,000,000 generated events by default; SEGMINT_BENCH_SCALE=0.1
for a tenth):
- the preview of ``lifetime_value >= 500`` through the Python API the command calls
  (:func:`segmint.membership.preview.preview_rule`: size and a 10-id sample); the baseline is
  one hand-written DuckDB statement counting the same profiles, in the same run;
- the same with an event condition, ``lifetime_value >= 500 and performed('Page Viewed',
  within => '30 days')``, against its hand-written count;
- the whole command as a person runs it (a new ``segmint`` process: start-up, workspace
  load, store open, preview, printing), against ``segmint segments list`` on the same
  workspace (start-up and store open, no evaluation).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import best_of, report
from traits import GENERATE
from web import AS_OF, WORKSPACE
from web import HAND as EVENT_HAND
from web import RULE as EVENT_RULE

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
PROFILES = int(1_000_000 * SCALE)
EVENTS = int(10_000_000 * SCALE)
RULES = {
    "trait rule": (
        "lifetime_value >= 500",
        """SELECT count(*) FROM (
  SELECT profile_id FROM events WHERE timestamp <= TIMESTAMP '2024-07-01'
  GROUP BY profile_id
  HAVING sum(TRY_CAST(properties->>'total' AS DOUBLE))
           FILTER (WHERE type = 'track' AND event = 'Order Completed') >= 500)""",
    ),
    "trait and event rule": (EVENT_RULE, EVENT_HAND),  # the console's preview figure
}


def api(folder: Path) -> None:
    from segmint.membership.preview import preview_rule
    from segmint.workspace import Workspace

    with Workspace.open(folder) as ws:
        store = ws.store
        for label, (rule, hand_sql) in RULES.items():
            found = preview_rule(store, ws.definition, rule, AS_OF, limit=10)
            (hand_size,) = store.fetchall(hand_sql)[0]
            assert found.size == hand_size, (rule, found.size, hand_size)
            ours = best_of(lambda r=rule: preview_rule(store, ws.definition, r, AS_OF), 3)
            hand = best_of(lambda s=hand_sql: store.fetchall(s), 3)
            report(f"segments preview ({label}) on {PROFILES:,} profiles", ours * 1000, "ms",
                   baseline=hand * 1000, baseline_name="hand-written DuckDB count",
                   ratio=ours / hand, goal="< 1000 ms")  # fmt: skip
            print(f"  {rule}: {found.size:,} members")


def command(folder: Path) -> None:
    base = [sys.executable, "-m", "segmint", "-w", str(folder)]
    rule, _ = RULES["trait rule"]
    preview = [*base, "segments", "preview", rule, "--as-of", "2024-07-01", "--format", "json"]
    listing = [*base, "segments", "list", "--format", "json"]

    def run(cmd: list[str]) -> None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    ours = best_of(lambda: run(preview), 3)
    floor = best_of(lambda: run(listing), 3)
    report(f"`segmint segments preview` command on {PROFILES:,} profiles", ours * 1000, "ms",
           baseline=floor * 1000, baseline_name="`segmint segments list` (start-up, no rule)",
           ratio=ours / floor, goal="< 1000 ms")  # fmt: skip


def main() -> None:
    from segmint.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "preview"
        folder.mkdir()
        (folder / "segmint.yaml").write_text(WORKSPACE)
        with Workspace.open(folder) as ws:
            start = time.perf_counter()
            ws.store.execute("SELECT setseed(0.42)")
            ws.store.execute(GENERATE.format(profiles=PROFILES, events=EVENTS))
            ws.store.execute("CHECKPOINT")
            print(f"generated {PROFILES:,} profiles / {EVENTS:,} events in "
                  f"{time.perf_counter() - start:.1f} s")  # fmt: skip
        api(folder)
        command(folder)


if __name__ == "__main__":
    main()
