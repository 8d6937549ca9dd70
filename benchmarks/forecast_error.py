"""Forecast error: forecast from the early rounds of finished loops, compare with what they really spent.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/forecast_error.py --seeds 0-9 \\
        --data digits:400:10 --data ../shared/data/clinc150:1000:50 --configs margin,default \\
        --cache /tmp/forecast-loops --jobs 2 --out /tmp/forecast_error.md
    # calibration: the forecast's settings, scored on other loops than the table's
    .venv/bin/python benchmarks/forecast_error.py --tune --seeds 0-19 --data digits:400 --data ../shared/data/snips:400 \\
        --configs margin,default --cache /tmp/forecast-cal --cached-only   # digits seeds 10-19, SNIPS 0-5 run before

Runs loops through the real ``clicloop.orchestrator.loop.Loop`` (default config, simulated crowd,
batches of ``--batch``) for every data set, configuration and seed: ``default`` is the loop as
shipped, ``margin`` is ``strategy: margin`` without pseudo-labels (``benchmarks/loop_labels.py``'s
rows). ``--data`` is ``digits`` (scikit-learn's) or a folder holding ``<name>.jsonl`` and
``<name>.minilm.npy`` (e.g. CLINC150: in-scope train items are the pool, in-scope test items the
evaluation set), each with ``:ANSWERS`` (the answers a loop buys, default ``--budget``) and
``:BATCH`` (default ``--batch``). Seed labels: 20, or 200 with more than 20 classes. ``--cache
DIR`` keeps each finished loop's rounds (labels, metric, human hours, money) as JSON and reuses
them: loops are deterministic given their seed, so the forecaster can be measured again without
rerunning them (use a fresh folder after a change to the loop; ``--cached-only`` runs none).
``--forecaster FILE`` measures another version of ``forecast.py`` (e.g. ``git show
COMMIT:orchestrator/reporting/forecast.py``) on the same loops; ``--scale S`` multiplies every
forecast by S (a correction of its bias, to be chosen on calibration loops). ``--tune`` scores a
grid of the forecast's curve families, noise scale and interval widening instead (see
:func:`tune`): run it on calibration loops (other seeds or data sets), never on the ones the
table reports.

For each finished loop the target is 98% of the best metric it reached; round R is the first whose
model meets it (as the loop's target rule would see it). From the first k rounds (k = 25%, 50%,
75% of R, at least 4) ``clicloop.orchestrator.reporting.forecast.forecast`` predicts the labels,
human hours and money still needed (with the unlabeled items left); the truth is what rounds
k..R-1 bought. Reported per data set, configuration and fraction: median absolute relative error of
labels, hours and money (a forecast of "unreachable" counts as an infinite error), the share of
truths inside the 80% interval (labels, hours, money), how often the forecast said "unreachable"
though the loop did reach the target, and the error of a straight-line baseline (the points per
human hour of the last 3 rounds, extrapolated).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

FRACTIONS = (0.25, 0.5, 0.75)
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "margin": {"strategy": {"name": "margin"}, "loop": {"pseudo_labels": None}},
    "random": {"strategy": {"name": "random"}, "loop": {"pseudo_labels": None}},
}
PURPOSE = "Benchmark: how well the forecast predicts what reaching a target costs (simulated crowd)."


def parse_data(specs: list[str], budget: int, batch: int) -> list[tuple[str, str, int, int]]:
    """``(name, spec, answers, batch)`` for each ``--data SPEC[:ANSWERS[:BATCH]]``."""
    out = []
    for spec in specs:
        parts = spec.split(":")
        numbers = []
        while len(parts) > 1 and parts[-1].isdigit() and len(numbers) < 2:
            numbers.insert(0, int(parts.pop()))
        path = ":".join(parts)
        answers, size = (numbers + [budget, batch][len(numbers):])[:2] if numbers else (budget, batch)
        out.append(("digits" if path == "digits" else Path(path).name, path, answers, size))
    return out


def prepare_data(name: str, spec: str, root: Path) -> tuple[dict[str, Any], int]:
    """The ``data`` section of a loop's config for ``spec`` and the pool's size."""
    if spec == "digits":
        from clicloop.orchestrator.config import Data
        from clicloop.orchestrator.data import load_data

        pool, _, _ = load_data(Data(builtin="digits"), 0)
        return {"builtin": "digits", "seed_size": 20}, len(pool.X)
    from benchmarks.loop_labels import data_section, prepare

    meta = prepare(spec, root / name)
    return data_section(root / name, 20 if meta["classes"] <= 20 else 200), int(meta["pool"])


def run_one(name: str, data: dict[str, Any], config: str, seed: int, answers: int, batch: int) -> dict[str, Any]:
    """One loop through the real Loop; its rounds as the report sees them (JSON-ready)."""
    from threadpoolctl import threadpool_limits

    from benchmarks.loop_labels import merge
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.reporting.report import build_report

    threadpool_limits(1)
    warnings.filterwarnings("ignore", message="The number of unique classes")  # CLINC150's first rounds: many classes, few labels
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        body = {"loop": {"name": "bench", "seed": seed, "batch_size": batch, "purpose": PURPOSE, "blas_threads": 1},
                "data": data, "stop": {"max_labels": answers}, "ledger": url}
        tick = time.perf_counter()
        Loop(config_from_dict(merge(body, CONFIGS[config]))).run()
        with Ledger(url) as led:
            rows, _ = build_report(led, "bench")
    return {"data": name, "config": config, "seed": seed, "answers": answers, "batch": batch,
            "seconds": time.perf_counter() - tick,
            "rows": [{"n_labeled": r.n_labeled, "metric": r.metric, "total_hours": r.total_hours, "cost": str(r.cost),
                      "n_eval": r.n_eval} for r in rows]}


def run_loops(data: list[tuple[str, str, int, int]], configs: list[str], seeds: list[int], cache: Path,
              jobs: int, cached_only: bool = False, runner: Any = None) -> list[dict[str, Any]]:
    """Every (data, config, seed) loop, from ``cache`` when it holds it, else run (``jobs`` at a
    time) and cached; with ``cached_only`` the loops not in the cache are left out (and said so).
    ``runner``: what runs one loop (default :func:`run_one`; ``forecast_signals.py`` records more)."""
    cache.mkdir(parents=True, exist_ok=True)
    loops, todo = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec, answers, batch in data:
            section, pool = prepare_data(name, spec, Path(tmp))
            for config in configs:
                for seed in seeds:
                    path = cache / f"{name}-{config}-b{batch}-a{answers}-seed{seed}.json"
                    if path.exists():
                        loops.append(json.loads(path.read_text()) | {"pool": pool})
                    else:
                        todo.append((path, pool, (name, section, config, seed, answers, batch)))
        if cached_only and todo:
            print(f"left out, not in {cache}: {', '.join(p.name for p, _, _ in todo)}", file=sys.stderr)
            todo = []
        with ProcessPoolExecutor(max(1, jobs)) as ex:
            futures = {ex.submit(runner or run_one, *args): (path, pool) for path, pool, args in todo}
            for fut in as_completed(futures):
                path, pool = futures[fut]
                res = fut.result()
                path.write_text(json.dumps(res))
                print(f"{res['data']} {res['config']} seed {res['seed']}: {len(res['rows'])} rounds in {res['seconds']:.0f}s",
                      file=sys.stderr, flush=True)
                loops.append(res | {"pool": pool})
    return sorted(loops, key=lambda r: (r["data"], r["config"], r["seed"]))


def evaluate(loops: list[dict[str, Any]], fraction: tuple[float, ...] = FRACTIONS, forecaster: Any = None) -> list[dict[str, Any]]:
    """The forecast cases of every loop (see the module's docstring); ``forecaster`` defaults to the product's."""
    from clicloop.orchestrator.reporting.forecast import forecast

    forecaster = forecaster or forecast
    cases = []
    for loop in loops:
        rows = [SimpleNamespace(**(r | {"cost": Decimal(r["cost"])})) for r in loop["rows"]]
        best = max(r.metric for r in rows if r.metric is not None)
        target = 0.98 * best
        reach = next(i for i, r in enumerate(rows) if r.metric is not None and r.metric >= target)
        for frac in fraction:
            k = max(4, round(frac * reach))
            if k >= reach:
                continue
            fc = forecaster(rows[:k], target, seed=loop["seed"], pool_left=loop["pool"] - rows[k - 1].n_labeled)
            true_h = sum(r.total_hours for r in rows[k:reach])
            true_c = float(sum(r.cost for r in rows[k:reach]))  # exact Decimal money, compared with a forecast (a float estimate)
            true_n = rows[reach].n_labeled - rows[k - 1].n_labeled
            cases.append({"data": loop["data"], "strategy": loop["config"], "seed": loop["seed"], "fraction": frac, "k": k,
                          "reach": reach, "status": fc.status, "true_h": true_h, "true_c": true_c, "fc_h": fc.hours_to_target,
                          "fc_c": fc.cost_to_target, "true_n": true_n, "fc_n": fc.labels_to_target,
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
    lines = ["| data | loop | forecast from | cases | median abs. error: labels | hours | money | "
             "truth inside the 80% interval: labels | hours | money | said unreachable | straight line: median abs. error, hours |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    groups = sorted({(c["data"], c["strategy"]) for c in cases}) + [("all", "all")]
    for data, strategy in groups:
        for frac in FRACTIONS:
            sel = [c for c in cases if c["fraction"] == frac and data in (c["data"], "all") and strategy in (c["strategy"], "all")]
            row = table_row(sel)
            if row:
                lines.append(f"| {data} | {strategy} | {frac:.0%} of the rounds to target | " + row)
    return lines


def bias(cases: list[dict[str, Any]]) -> list[str]:
    """Which way the point forecasts err, every case pooled, per fraction: the median of forecast /
    truth (over the cases with a finite forecast) and the share of those below the truth."""
    lines = ["Direction of the error (every case with a finite forecast): median forecast / truth, and the share "
             "below the truth; labels / hours / money", ""]
    for frac in FRACTIONS:
        sel = [c for c in cases if c["fraction"] == frac]
        parts, finite = [], 0
        for k in ("n", "h", "c"):
            r = [c[f"fc_{k}"].point / c[f"true_{k}"] for c in sel
                 if c[f"fc_{k}"] is not None and math.isfinite(c[f"fc_{k}"].point) and c[f"true_{k}"] > 0]
            parts.append(f"{statistics.median(r):.2f}x, {sum(x < 1 for x in r) / len(r):.0%} below" if r else "-")
            finite = max(finite, len(r))
        lines.append(f"- from {frac:.0%} of the rounds ({finite} of {len(sel)} cases finite): " + " / ".join(parts))
    return lines


def scores(sel: list[dict[str, Any]]) -> dict[str, float] | None:
    """Median absolute relative errors (``n``, ``h``, ``c``), interval coverage (``in_n``, ``in_h``,
    ``in_c``), unreachable count and the straight line's error over the cases ``sel``."""
    made = [c for c in sel if c["fc_h"] is not None and c["true_h"] > 0 and c["true_c"] > 0 and c["true_n"] > 0]
    if not made:
        return None
    out: dict[str, float] = {"cases": len(made)}
    for k in ("n", "h", "c"):
        out[k] = statistics.median(_error(c[f"fc_{k}"], c[f"true_{k}"]) for c in made)
        out[f"in_{k}"] = sum(c[f"fc_{k}"].low <= c[f"true_{k}"] <= c[f"fc_{k}"].high for c in made) / len(made)
    out["unreachable"] = sum(c["status"] == "unreachable" for c in made)
    out["naive"] = statistics.median(abs(c["naive_h"] - c["true_h"]) / c["true_h"] if math.isfinite(c["naive_h"]) else math.inf
                                     for c in made)
    return out


def table_row(sel: list[dict[str, Any]]) -> str | None:
    s = scores(sel)
    if s is None:
        return None
    n = int(s["cases"])
    return (f"{n} | {_pct(s['n'])} | {_pct(s['h'])} | {_pct(s['c'])} | {_pct(s['in_n'])} | {_pct(s['in_h'])} | {_pct(s['in_c'])} | "
            f"{int(s['unreachable'])} of {n} | {_pct(s['naive'])} |")


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%" if math.isfinite(v) else "∞"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,1,2")
    ap.add_argument("--data", action="append", default=None,
                    help="digits or a folder, each with :ANSWERS[:BATCH] (repeat); default digits")
    ap.add_argument("--configs", default="margin,default", help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--budget", type=int, default=400, help="answers each loop buys, unless its --data says")
    ap.add_argument("--batch", type=int, default=10, help="items per round, unless its --data says")
    ap.add_argument("--cache", type=Path, default=None, help="folder keeping each loop's rounds (reused when present)")
    ap.add_argument("--cached-only", action="store_true", help="use the loops --cache holds; run none")
    ap.add_argument("--jobs", type=int, default=1, help="loops run at a time (one BLAS thread each)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--forecaster", type=Path, default=None,
                    help="a forecast.py to measure instead of the product's, e.g. an earlier version: "
                         "git show COMMIT:orchestrator/reporting/forecast.py > /tmp/old_forecast.py")
    ap.add_argument("--scale", type=float, default=None,
                    help="multiply every forecast (labels, hours, money: point and interval) by this factor, to measure a "
                         "correction of the forecast's bias (choose it on calibration loops: other seeds or data sets)")
    ap.add_argument("--families", default=None, help="with --tune: these curve families (comma-separated) ...")
    ap.add_argument("--noise-scale", type=float, default=None, help="... and this noise scale; only the widening is tuned")
    ap.add_argument("--tune", action="store_true",
                    help="instead of the table, score a grid of the forecast's curve families and noise scales (run it on "
                         "calibration loops: other seeds or data sets than the ones the table reports)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    seeds = parse_seeds(args.seeds)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown --configs {unknown}: use {', '.join(CONFIGS)}")
    data = parse_data(args.data or ["digits"], args.budget, args.batch)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="forecast-bench-"))
    loops = run_loops(data, configs, seeds, cache, args.jobs, args.cached_only)
    if args.tune:
        fixed = (tuple(args.families.split(",")), args.noise_scale) if args.families and args.noise_scale else None
        print("\n".join(tune(loops, fixed)))
        return 0
    forecaster = load_forecaster(args.forecaster) if args.forecaster else None
    if args.scale is not None:
        forecaster = scaled(forecaster, args.scale)
    cases = evaluate(loops, forecaster=forecaster)
    scale = "" if args.scale is None else f" x {args.scale}"
    lines = [f"{dt.date.today().isoformat()}, {platform.node() or 'host'}: {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"seeds {args.seeds}, data {', '.join(f'{n} ({a} answers, batches of {b})' for n, _, a, b in data)}, "
             f"loops {', '.join(configs)}; forecaster {args.forecaster or 'the product'}{scale}; whole run {time.perf_counter() - started:.0f} s.", ""]
    lines += summarise(cases) + [""] + bias(cases)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


TUNE_FAMILIES = (("power",), ("mmf",), ("power", "mmf"), ("power", "exp", "mmf"))
TUNE_NOISE = (0.75, 1.0, 1.5, 2.0)
TUNE_WIDEN = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5)


def tune(loops: list[dict[str, Any]], fixed: tuple[tuple[str, ...], float] | None = None) -> list[str]:
    """The forecast's settings scored on ``loops`` (every fraction pooled), in two steps: the curve
    families and noise scale with the least median labels error, then the least interval
    widening whose 80% interval holds the labels' truth in at least 80% of the cases (widening
    leaves the point forecast as it is). ``fixed``: families and noise scale given, step 2 only."""
    from clicloop.orchestrator.reporting.forecast import forecast

    def score(families: tuple[str, ...], scale: float, widen: float) -> dict[str, float] | None:
        def fc(rows_: list[Any], target: float, **kw: Any) -> Any:
            return forecast(rows_, target, families=families, noise_scale=scale, widen=widen, **kw)

        return scores(evaluate(loops, FRACTIONS, fc))

    head = ["| families | noise scale | widen | cases | median abs. error: labels | hours | money | "
            "truth inside the 80% interval: labels | hours | money |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines, rows = list(head), []
    for families in TUNE_FAMILIES if fixed is None else ():
        for scale in TUNE_NOISE:
            s = score(families, scale, 1.0)
            if s is not None:
                rows.append((families, scale, s))
                lines.append(_tune_row(families, scale, 1.0, s))
    if fixed is not None:
        families, scale = fixed
    elif not rows:
        return lines
    else:
        families, scale, _ = min(rows, key=lambda r: r[2]["n"])
    lines += ["", f"step 1: families {families}, noise scale {scale}", ""] + head
    widen = TUNE_WIDEN[-1]
    for w in TUNE_WIDEN:
        s = score(families, scale, w)
        if s is None:
            continue
        lines.append(_tune_row(families, scale, w, s))
        if s["in_n"] >= 0.8:
            widen = w
            break
    lines += ["", f"pick: families {families}, noise scale {scale}, widen {widen}"]
    return lines


def _tune_row(families: tuple[str, ...], scale: float, widen: float, s: dict[str, float]) -> str:
    return (f"| {'+'.join(families)} | {scale} | {widen} | {int(s['cases'])} | {_pct(s['n'])} | {_pct(s['h'])} | {_pct(s['c'])} | "
            f"{_pct(s['in_n'])} | {_pct(s['in_h'])} | {_pct(s['in_c'])} |")


def scaled(forecaster: Any, factor: float) -> Any:
    """``forecaster`` (None: the product's) with its labels, hours and money (point and interval)
    multiplied by ``factor``: a multiplicative correction of its bias, for measuring."""
    import dataclasses

    from clicloop.orchestrator.reporting.forecast import Interval, forecast

    inner = forecaster or forecast

    def times(iv: Any) -> Any:
        return None if iv is None else Interval(iv.point * factor, iv.low * factor, iv.high * factor)

    def fc(rows: list[Any], target: float, **kw: Any) -> Any:
        f = inner(rows, target, **kw)
        return dataclasses.replace(f, labels_to_target=times(f.labels_to_target), hours_to_target=times(f.hours_to_target),
                                   cost_to_target=times(f.cost_to_target))

    return fc


def load_forecaster(path: Path) -> Any:
    """The ``forecast`` function of the module at ``path``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("forecast_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--forecaster {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.forecast


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if lo:
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
