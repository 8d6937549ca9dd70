"""Redundancy and aggregation on a careless crowd: human hours to a target accuracy (issue #6).

    .venv/bin/python benchmarks/redundancy.py --seeds 5 --target 0.9 --careless 0.2 --out /tmp/redundancy.md

The real loop (margin sampling on the bundled digits, the simulated crowd with ``--careless`` of
its workers answering at random) runs once per scheme and seed, side by side, until the
evaluation accuracy reaches ``--target`` or ``--max-hours`` of human time are spent:

* ``1 answer``: one answer per item;
* ``3 + majority``: three answers per item, majority vote;
* ``3 + Dawid-Skene``: three answers, crowd-kit's Dawid-Skene (per-worker confusion matrices);
* ``adaptive``: two answers, a third only when they disagree (majority vote);
* ``adaptive + Dawid-Skene``: the same with Dawid-Skene.

Reported per scheme: how many seeds reached the target, and the median (min-max) human hours
(active and unpaid) and answers bought to get there. A run that misses the target counts as
``--max-hours`` (so a scheme never looks cheaper by failing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

SCHEMES: dict[str, dict[str, Any]] = {
    "1 answer": {"redundancy": 1, "aggregator": "majority"},
    "3 + majority": {"redundancy": 3, "aggregator": "majority"},
    "3 + Dawid-Skene": {"redundancy": 3, "aggregator": "dawid-skene"},
    "adaptive (2, up to 3) + majority": {"redundancy": 2, "aggregator": "majority", "adaptive": {"max_answers": 3, "agreement": 0.75}},
    "adaptive (2, up to 3) + Dawid-Skene": {"redundancy": 2, "aggregator": "dawid-skene", "adaptive": {"max_answers": 3, "agreement": 0.75}},
}


def config(scheme: dict[str, Any], *, seed: int, ledger: str, target: float, max_hours: float, careless: float,
           batch: int) -> Any:
    from clicloop.orchestrator.config import config_from_dict

    loop: dict[str, Any] = {"name": "redundancy", "seed": seed, "batch_size": batch, "redundancy": scheme["redundancy"],
                            "purpose": "Benchmark: redundancy and aggregation on a careless crowd (simulated)."}
    if "adaptive" in scheme:
        loop["adaptive"] = scheme["adaptive"]
    return config_from_dict({
        "loop": loop,
        "data": {"builtin": "digits", "seed_size": 20},
        "strategy": {"name": "margin"},
        "aggregator": {"name": scheme["aggregator"]},
        "backend": {"name": "simulated", "params": {"n_workers": 30, "careless_fraction": careless}},
        "stop": {"target_metric": target, "max_hours": max_hours},
        "ledger": ledger,
    })


def run_one(scheme: dict[str, Any], seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from clicloop.orchestrator.loop import Loop

    cfg = config(scheme, seed=seed, ledger=f"sqlite:///{folder / 'ledger.db'}", target=args.target,
                 max_hours=args.max_hours, careless=args.careless, batch=args.batch)
    results = Loop(cfg).run(restart=True)
    reached = next((i for i, r in enumerate(results) if r.metric is not None and r.metric >= args.target), None)
    bought = results if reached is None else results[:reached]  # rounds before the model that reached it
    hours = sum(r.total_hours for r in bought)
    return {"reached": reached is not None, "hours": hours if reached is not None else args.max_hours,
            "answers": sum(r.answers for r in bought), "cost": sum(r.cost for r in bought)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.9, help="evaluation accuracy to reach")
    ap.add_argument("--careless", type=float, default=0.2, help="share of workers answering at random")
    ap.add_argument("--max-hours", type=float, default=20.0, help="give up after this many human hours")
    ap.add_argument("--batch", type=int, default=10, help="items per round")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here too")
    args = ap.parse_args()

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SCHEMES}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):  # schemes alternate inside every seed: the same crowd, side by side
            for k, (name, scheme) in enumerate(SCHEMES.items()):
                folder = Path(tmp) / f"seed{seed}-scheme{k}"
                folder.mkdir()
                runs[name].append(run_one(scheme, seed, args, folder))
                r = runs[name][-1]
                print(f"seed {seed} {name:38s} reached={r['reached']!s:5s} hours={r['hours']:.2f} answers={r['answers']}", flush=True)
    lines = [f"Digits, margin sampling, simulated crowd of 30 with {args.careless:.0%} careless workers, target accuracy "
             f"{args.target}, {args.seeds} seeds (0-{args.seeds - 1}); {time.perf_counter() - started:.0f} s in all.", "",
             "| scheme | reached | human hours to target, median (min-max) | answers, median | requester cost, median |",
             "|---|---|---|---|---|"]
    for name, rs in runs.items():
        hours = [r["hours"] for r in rs]
        lines.append(f"| {name} | {sum(r['reached'] for r in rs)}/{len(rs)} | {statistics.median(hours):.2f} "
                     f"({min(hours):.2f}-{max(hours):.2f}) | {statistics.median(r['answers'] for r in rs):.0f} | "
                     f"{statistics.median(r['cost'] for r in rs):.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
