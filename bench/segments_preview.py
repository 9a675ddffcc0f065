"""``segmint segments preview "RULE"`` on 1M profiles (goal < 1 s).

Figures (1,000,000 profiles / 10,000,000 generated events by default; SEGMINT_BENCH_SCALE=0.1
for a tenth):
- the command's default: the rule over the traits the last refresh computed
  (:func:`segmint.membership.preview.preview_stored`, size and a 10-id sample); baseline: a
  hand-written count over the same ``profile_traits`` table, in the same run;
- with ``--as-of`` (traits computed from the events at that instant,
  :func:`segmint.membership.preview.preview_rule`); baseline: one hand-written DuckDB
  statement over the events counting the same profiles;
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

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
PROFILES = int(1_000_000 * SCALE)
EVENTS = int(10_000_000 * SCALE)
RULE = "lifetime_value >= 500"
FROM_EVENTS = """SELECT count(*) FROM (
  SELECT profile_id FROM events WHERE timestamp <= TIMESTAMP '2024-07-01'
  GROUP BY profile_id
  HAVING sum(TRY_CAST(properties->>'total' AS DOUBLE))
           FILTER (WHERE type = 'track' AND event = 'Order Completed') >= 500)"""
FROM_TRAITS = 'SELECT count(*) FROM profile_traits WHERE "lifetime_value" >= 500'


def api(folder: Path) -> None:
    from segmint.membership.compiled import CompiledSegments
    from segmint.membership.preview import preview_rule, preview_stored
    from segmint.traits.batch import refresh
    from segmint.workspace import Workspace

    with Workspace.open(folder) as ws:
        store, defn = ws.store, ws.definition
        start = time.perf_counter()
        refresh(store, CompiledSegments(defn).catalog, AS_OF)  # what `segmint refresh` leaves
        print(f"traits refreshed in {time.perf_counter() - start:.1f} s")
        stored = preview_stored(store, defn, RULE, limit=10)
        computed = preview_rule(store, defn, RULE, AS_OF, limit=10)
        (hand_size,) = store.fetchall(FROM_EVENTS)[0]
        assert stored.size == computed.size == hand_size, (stored.size, computed.size, hand_size)
        ours = best_of(lambda: preview_stored(store, defn, RULE, limit=10), 5)
        hand = best_of(lambda: store.fetchall(FROM_TRAITS), 5)
        report(f"segments preview on {PROFILES:,} profiles (last refresh's traits)", ours * 1000,
               "ms", baseline=hand * 1000, baseline_name="hand-written count over profile_traits",
               ratio=ours / hand, goal="< 1000 ms")  # fmt: skip
        ours = best_of(lambda: preview_rule(store, defn, RULE, AS_OF, limit=10), 2)
        hand = best_of(lambda: store.fetchall(FROM_EVENTS), 2)
        report(f"segments preview --as-of on {PROFILES:,} profiles (traits from events)",
               ours * 1000, "ms", baseline=hand * 1000,
               baseline_name="hand-written count over the events", ratio=ours / hand,
               goal="< 1000 ms")  # fmt: skip
        print(f"  {RULE}: {stored.size:,} members")


def command(folder: Path) -> None:
    base = [sys.executable, "-m", "segmint", "-w", str(folder)]
    preview = [*base, "segments", "preview", RULE, "--format", "json"]
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
