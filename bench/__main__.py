"""Program evaluation time and peak RSS under the mock engine, one fresh process per case.

    .venv/bin/python -m bench [--cases dev,prod,fleet-1,fleet-10,fleet-50]

Each case runs `bench.case` in its own interpreter, so import cost and peak RSS are the
program's alone. Fleets are `bench.fleet.fleet_config(N, 5)`: N images x 5 regions, two
consumers each. Prints a markdown table and checks the targets; exits 1 if one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("dev", "prod", "fleet-1", "fleet-10", "fleet-50")
PROD_EVAL_S = 1.5
FLEET50_EVAL_S = 5.0
RSS_MB = 300.0
LINEAR = 1.5
"""Linear growth: fleet-50's time per resource within 1.5x of fleet-10's."""


def run_case(case: str) -> dict[str, float | int | str]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.case", case],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float | int | str] = json.loads(out.strip().splitlines()[-1])
    return result


def table(rows: Sequence[dict[str, float | int | str]]) -> str:
    lines = [
        "| case | images | resources | import (s) | evaluation (s) | CPU (s) | ms / resource "
        "| peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        per = 1000 * float(r["eval_s"]) / int(r["resources"])
        lines.append(
            f"| {r['case']} | {r['images']} | {r['resources']} | {float(r['import_s']):.2f} "
            f"| {float(r['eval_s']):.2f} | {float(r['cpu_s']):.2f} | {per:.1f} "
            f"| {float(r['rss_mb']):.0f} |"
        )
    return "\n".join(lines)


def checks(rows: Sequence[dict[str, float | int | str]]) -> list[tuple[str, bool]]:
    by = {str(r["case"]): r for r in rows}
    out: list[tuple[str, bool]] = []
    if "prod" in by:
        value = float(by["prod"]["eval_s"])
        out.append((f"prod evaluation {value:.2f} s <= {PROD_EVAL_S} s", value <= PROD_EVAL_S))
    if "fleet-50" in by:
        value = float(by["fleet-50"]["eval_s"])
        out.append(
            (f"fleet-50 evaluation {value:.2f} s <= {FLEET50_EVAL_S} s", value <= FLEET50_EVAL_S)
        )
    if "fleet-10" in by and "fleet-50" in by:

        def per(case: str) -> float:
            return float(by[case]["eval_s"]) / int(by[case]["resources"])

        ratio = per("fleet-50") / per("fleet-10")
        out.append(
            (f"time per resource fleet-50 / fleet-10 = {ratio:.2f} <= {LINEAR}", ratio <= LINEAR)
        )
    peak = max(float(r["rss_mb"]) for r in rows)
    out.append((f"peak RSS {peak:.0f} MB <= {RSS_MB:.0f} MB", peak <= RSS_MB))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    rows = [run_case(case) for case in args.cases.split(",")]
    print(table(rows))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{os.cpu_count()} CPUs, load average {load} (1, 5, 15 min) after the run")
    print()
    results = checks(rows)
    for text, ok in results:
        print(f"{'ok  ' if ok else 'MISS'} {text}")
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
