"""Label efficiency of clicloop's strategies: labels to 95% / 98% of full-data accuracy and the
area under the learning curve, paired seeds, bootstrap intervals on ratios to margin sampling.

    .venv/bin/python benchmarks/strategies_labels.py --data digits --batch 10 --max-labels 400 \\
        --seeds 10 --out /tmp/digits_b10.json
    .venv/bin/python benchmarks/strategies_labels.py --report /tmp/digits_b10.json

Every strategy gets the same model (benchmarks._al_sim.WarmLR), the same seed labels for a given
seed, the same perfect oracle and the same evaluation split; only the selection differs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT = ["random", "margin", "modal:margin_sampling", "entropy", "least-confidence", "cluster-margin",
           "density-weighted", "k-center-greedy"]


def _job(args: tuple[str, str, int, int, int]) -> tuple[str, int, list[tuple[int, float]], float]:
    import torch

    torch.set_num_threads(1)
    from benchmarks._al_sim import load_dataset, run_curve

    data, name, seed, batch, max_labels = args
    t = time.perf_counter()
    curve = run_curve(load_dataset(data), name, seed, batch, max_labels)
    return name, seed, curve, time.perf_counter() - t


def run(ns: argparse.Namespace) -> None:
    from benchmarks._al_sim import full_accuracy, load_dataset

    ds = load_dataset(ns.data)
    full = full_accuracy(ds)
    jobs = [(ns.data, s, seed, ns.batch, ns.max_labels) for seed in range(ns.seeds) for s in ns.strategies]
    out: dict[str, Any] = {"data": ds["name"], "batch": ns.batch, "max_labels": ns.max_labels, "full_accuracy": full,
                           "seeds": ns.seeds, "curves": {}, "seconds": {}}
    with ProcessPoolExecutor(ns.jobs) as pool:
        for name, seed, curve, secs in pool.map(_job, jobs):
            out["curves"].setdefault(name, {})[str(seed)] = curve
            out["seconds"].setdefault(name, []).append(secs)
            print(f"{name} seed {seed}: final {curve[-1]} in {secs:.0f}s", flush=True)
            Path(ns.out).write_text(json.dumps(out))


def labels_to(curve: list[list[float]], target: float) -> float:
    for n, acc in curve:
        if acc >= target:
            return float(n)
    return float("inf")


def aulc(curve: list[list[float]]) -> float:
    n = np.array([c[0] for c in curve], dtype=float)
    a = np.array([c[1] for c in curve], dtype=float)
    return float(np.trapezoid(a, n) / (n[-1] - n[0]))


def _boot(ratios: np.ndarray, rng: np.random.Generator, B: int = 10_000) -> tuple[float, float]:
    idx = rng.integers(0, ratios.size, (B, ratios.size))
    means = ratios[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def report(paths: list[str]) -> None:
    rng = np.random.default_rng(0)
    for path in paths:
        res = json.loads(Path(path).read_text())
        full = res["full_accuracy"]
        print(f"\n{res['data']}, batch {res['batch']}, budget {res['max_labels']} labels, {res['seeds']} paired seeds, "
              f"full-data accuracy {full:.3f}\n")
        print("| strategy | labels to 95% (median) | ratio to margin [95% CI] | labels to 98% (median) | ratio to margin [95% CI] | AULC | AULC - margin [95% CI] |")
        print("|---|---|---|---|---|---|---|")
        base = res["curves"]["margin"]
        for name, curves in res["curves"].items():
            seeds = sorted(set(base) & set(curves), key=int)  # paired: seeds both have finished
            if not seeds:
                continue
            cells = [f"{name} (n={len(seeds)})" if len(seeds) < res["seeds"] else name]
            for frac in (0.95, 0.98):
                mine = np.array([labels_to(curves[s], frac * full) for s in seeds])
                ref = np.array([labels_to(base[s], frac * full) for s in seeds])
                med = np.median(mine)
                cells.append(f"{med:.0f}" if np.isfinite(med) else f"> {res['max_labels']}")
                if np.isfinite(mine).all() and np.isfinite(ref).all():
                    r = mine / ref
                    lo, hi = _boot(r, rng)
                    cells.append(f"{r.mean():.2f} [{lo:.2f}, {hi:.2f}]")
                else:
                    cells.append(f"not reached in {int((~np.isfinite(mine)).sum())}/{len(seeds)} runs")
            a = np.array([aulc(curves[s]) for s in seeds])
            d = a - np.array([aulc(base[s]) for s in seeds])
            lo, hi = _boot(d, rng)
            cells += [f"{a.mean():.3f}", f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"]
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="digits, or a folder such as ../shared/data/clinc150")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--max-labels", type=int, default=400)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--strategies", nargs="+", default=DEFAULT)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default="labels.json")
    p.add_argument("--report", nargs="+", help="print the tables of earlier runs")
    ns = p.parse_args()
    if ns.report:
        report(ns.report)
    else:
        run(ns)


if __name__ == "__main__":
    main()
