"""Forecast error: forecast from the early rounds of finished loops, compare with what they really spent.

    .venv/bin/python benchmarks/forecast_error.py --seeds 0,1,2,3,4,5 --budget 400 --out /tmp/forecast_error.md

Runs quickstart-like loops (digits, simulated crowd, batches of 10; margin and random sampling)
for every seed through ``clicloop.orchestrator.loop.Loop``. For each finished loop the target is 98% of
the best metric it reached; round R is the first whose model meets it (as the loop's target rule
would see it). From the first k rounds (k = 25%, 50%, 75% of R, at least 4)
``clicloop.orchestrator.reporting.forecast.forecast`` predicts the labels, human hours and money still needed; the
truth is what rounds k..R-1 bought. Reported per fraction: median absolute relative error of
labels, hours and money (a forecast of "unreachable" counts as an infinite error), the share of
truths inside the 80% interval (labels and hours), how often the forecast said "unreachable"
though the loop did reach the target, and the error of a straight-line baseline (the points per
human hour of the last 3 rounds, extrapolated).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRACTIONS = (0.25, 0.5, 0.75)


def run_loops(seeds: list[int], budget: int, workdir: Path) -> list[tuple[str, int, list[Any]]]:
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.loop import Loop
    from clicloop.orchestrator.cli.quickstart import quickstart_config
    from clicloop.orchestrator.reporting.report import build_report

    out = []
    for seed in seeds:
        url = f"sqlite:///{workdir / f'seed{seed}.db'}"
        for strategy in ("margin", "random"):
            tick = time.perf_counter()
            Loop(quickstart_config(strategy, ledger=url, seed=seed, budget=budget)).run(restart=True)
            with Ledger(url) as led:
                rows, _ = build_report(led, f"quickstart-{strategy}")
            print(f"seed {seed} {strategy}: {len(rows)} rounds in {time.perf_counter() - tick:.0f}s", file=sys.stderr, flush=True)
            out.append((strategy, seed, rows))
    return out


def evaluate(loops: list[tuple[str, int, list[Any]]]) -> list[dict[str, Any]]:
    from clicloop.orchestrator.reporting.forecast import forecast

    cases = []
    for strategy, seed, rows in loops:
        best = max(r.metric for r in rows if r.metric is not None)
        target = 0.98 * best
        reach = next(i for i, r in enumerate(rows) if r.metric is not None and r.metric >= target)
        for frac in FRACTIONS:
            k = max(4, round(frac * reach))
            if k >= reach:
                continue
            fc = forecast(rows[:k], target, seed=seed)
            true_h = sum(r.total_hours for r in rows[k:reach])
            true_c = float(sum(r.cost for r in rows[k:reach]))  # exact Decimal money, compared with a forecast (a float estimate)
            true_n = rows[reach].n_labeled - rows[k - 1].n_labeled
            cases.append({"strategy": strategy, "seed": seed, "fraction": frac, "k": k, "reach": reach, "status": fc.status,
                          "true_h": true_h, "true_c": true_c, "fc_h": fc.hours_to_target, "fc_c": fc.cost_to_target,
                          "true_n": true_n, "fc_n": fc.labels_to_target,
                          "naive_h": naive_hours(rows[:k], target)})
    return cases


def naive_hours(rows: list[Any], target: float) -> float:
    """The straight-line baseline: the points per human hour of the last 3 rounds, extrapolated
    (what a person reading the report would guess); inf when the metric did not rise."""
    pts = [(i, r) for i, r in enumerate(rows) if r.metric is not None]
    (i0, first), (i1, last) = pts[max(0, len(pts) - 4)], pts[-1]
    hours = sum(r.total_hours for r in rows[i0:i1])
    rate = (last.metric - first.metric) / hours if hours > 0 else 0.0
    pending = sum(r.total_hours for r in rows[i1:])
    return max(0.0, (target - last.metric) / rate - pending) if rate > 0 else math.inf


def _error(forecast_: Any, truth: float) -> float:
    """Absolute relative error of a point forecast; "unreachable" (inf) is an infinite error."""
    return abs(forecast_.point - truth) / truth if math.isfinite(forecast_.point) else math.inf


def summarise(cases: list[dict[str, Any]]) -> list[str]:
    lines = ["| strategy | forecast from | cases | median abs. error: labels | hours | money | "
             "truth inside the 80% interval: labels | hours | said unreachable | straight line: median abs. error, hours |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for strategy in ("margin", "random", "all"):
        for frac in FRACTIONS:
            sel = [c for c in cases if c["fraction"] == frac and strategy in (c["strategy"], "all")]
            made = [c for c in sel if c["fc_h"] is not None and c["true_h"] > 0 and c["true_c"] > 0 and c["true_n"] > 0]
            if not made:
                continue
            med = {k: statistics.median(_error(c[f"fc_{k}"], c[f"true_{k}"]) for c in made) for k in ("n", "h", "c")}
            inside = {k: sum(c[f"fc_{k}"].low <= c[f"true_{k}"] <= c[f"fc_{k}"].high for c in made) / len(made) for k in ("n", "h")}
            unreach = sum(c["status"] == "unreachable" for c in made)
            naive = statistics.median(abs(c["naive_h"] - c["true_h"]) / c["true_h"] if math.isfinite(c["naive_h"]) else math.inf
                                      for c in made)
            lines.append(f"| {strategy} | {frac:.0%} of the rounds to target | {len(made)} | {_pct(med['n'])} | {_pct(med['h'])} | "
                         f"{_pct(med['c'])} | {_pct(inside['n'])} | {_pct(inside['h'])} | {unreach} of {len(made)} | {_pct(naive)} |")
    return lines


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%" if math.isfinite(v) else "∞"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4,5")
    ap.add_argument("--budget", type=int, default=400, help="answers each loop buys")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    loops = run_loops(seeds, args.budget, Path(tempfile.mkdtemp(prefix="forecast-bench-")))
    cases = evaluate(loops)
    lines = [f"{dt.date.today().isoformat()}, {platform.node() or 'host'}: {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"seeds {args.seeds}, {args.budget} answers per loop, batches of 10; whole run {time.perf_counter() - started:.0f} s.", ""]
    lines += summarise(cases)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
