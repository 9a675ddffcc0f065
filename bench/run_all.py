"""Run every benchmark in ``bench/`` and write ``docs/benchmarks.md``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
SKIP = {"common.py", "run_all.py"}


def main() -> int:
    rows: list[dict[str, object]] = []
    failed: list[str] = []
    for script in sorted(HERE.glob("*.py")):
        if script.name in SKIP or script.name.startswith("_"):
            continue
        print(f"== {script.name}", flush=True)
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=False
        )
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failed.append(script.name)
            sys.stderr.write(proc.stderr[-4000:])
        for line in proc.stdout.splitlines():
            if line.startswith("BENCH "):
                rows.append({"script": script.name, **json.loads(line[6:])})
    write_report(rows, failed)
    return 1 if failed else 0


def write_report(rows: list[dict[str, object]], failed: list[str]) -> None:
    out = HERE.parent / "docs" / "benchmarks.md"
    out.parent.mkdir(exist_ok=True)
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}.",
        "Each ratio compares against a baseline measured in the same run on the same machine.",
        "",
        "| benchmark | figure | baseline | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        base = row.get("baseline")
        base_text = f"{base:,.2f} {row['unit']} ({row.get('baseline_name')})" if base else ""
        ratio = row.get("ratio")
        ratio_text = f"{ratio:.2f}" if isinstance(ratio, int | float) else ""
        lines.append(
            f"| {row['name']} ({row['script']}) | {row['figure']:,.2f} {row['unit']} "
            f"| {base_text} | {ratio_text} | {row.get('goal', '')} |"
        )
    if failed:
        lines += ["", "Failed to run: " + ", ".join(failed)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
