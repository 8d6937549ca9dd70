"""Label efficiency of clicloop's strategies: labels to 95% / 98% of full-data accuracy and the
area under the learning curve, paired seeds, bootstrap intervals on ratios to margin sampling.

    .venv/bin/python benchmarks/strategies_labels.py --data digits --batch 10 --max-labels 400 \\
        --seeds 10 --out /tmp/digits_b10.json
    .venv/bin/python benchmarks/strategies_labels.py --report /tmp/digits_b10.json

Every strategy gets the same model (benchmarks._al_sim.WarmLR), the same seed labels for a given
seed, the same perfect oracle and the same evaluation split; only the selection differs.
``--noise 0.08`` makes the oracle err as a crowd does (8% of answers another class, the same
answers for every strategy of a seed); the evaluation split stays true.

A training change is a row of its own, same protocol, never mixed with the strategy rows:
``--self-train 0.95`` adds ``<strategy>+self-train=0.95`` for every strategy (pseudo-labels on
pool items with max probability >= 0.95, see ``benchmarks._al_sim.run_curve``); such a name can
also be given directly, e.g. ``--strategies margin badge margin+self-train=0.95``.
``--pseudo-weight 0.5`` weights the pseudo-labels (name suffix ``+pseudo-weight=0.5``).
``--cold-start N`` adds ``<strategy>+cold-start=N`` rows: the starting set is N items picked by
clicloop's cold-start selector (pool coverage, no model) instead of the random seed labels, as
clicloop's loop does when it starts with no labels; the curve counts those N labels.
Other training changes are given by name (see ``benchmarks/_training.py``): ``margin+C=100``
(another regularisation), ``margin+proto=20`` (class prototypes added to the weights),
``margin+label-spread=0.5`` (label-spreading pseudo-labels on the surer half of the pool),
``margin+label-spread=0+agree=1`` (every pool item on which the spread label and the model agree);
``+query-human=1`` makes the strategy score the pool with the model fitted on the human labels
alone, while the model trained with the other changes is evaluated; ``+contention=1`` restricts
the picks to the items where the spread label and the labeled-only model disagree (co-testing).
``--model committee`` / ``--model mc-dropout`` run every strategy with clicloop's bagged committee
or MC-dropout MLP instead (what query-by-committee and BALD need); compare within such a run only.
``--report a.json b.json --merge`` pools the curves of runs with the same data, batch and budget;
``--at 400 1000`` also prints each run's accuracy at those label counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT = ["random", "margin", "modal:margin_sampling", "entropy", "least-confidence", "cluster-margin",
           "density-weighted", "k-center-greedy"]


def _job(args: tuple[str, str, int, int, int, str, float, str]) -> tuple[str, int, list[tuple[int, float]], float]:
    import torch

    torch.set_num_threads(1)
    from benchmarks._al_sim import load_dataset, run_curve

    data, name, seed, batch, max_labels, model, noise, pseudo_start = args
    strategy, options = parse_name(name)
    t = time.perf_counter()
    cold = options.get("cold-start")
    training = {k: v for k, v in options.items() if k != "cold-start"}
    curve = run_curve(load_dataset(data), strategy, seed, batch, max_labels,
                      cold_start=None if cold is None else int(cold), model_name=model, training=training, noise=noise,
                      pseudo_start=pseudo_start)
    return name, seed, curve, time.perf_counter() - t


TRAINING_CHANGES = ("self-train", "pseudo-weight", "label-spread", "agree", "proto", "C", "prior", "cold-start",
                    "query-human", "contention")


def parse_name(name: str) -> tuple[str, dict[str, float]]:
    """``"margin+self-train=0.95+pseudo-weight=0.5"`` -> ``("margin", {"self-train": 0.95, "pseudo-weight": 0.5})``."""
    strategy, *changes = name.split("+")
    options = {}
    for change in changes:
        key, _, value = change.partition("=")
        if key not in TRAINING_CHANGES or not value:
            raise SystemExit(f"unknown training change {change!r} in {name!r}; known: {', '.join(TRAINING_CHANGES)} (key=value)")
        options[key] = float(value)
    if "pseudo-weight" in options and "self-train" not in options:
        raise SystemExit(f"{name!r}: pseudo-weight needs self-train")
    if "agree" in options and "label-spread" not in options:
        raise SystemExit(f"{name!r}: agree needs label-spread")
    return strategy, options


def with_training_changes(ns: argparse.Namespace) -> list[str]:
    names = list(ns.strategies)
    weight = "" if ns.pseudo_weight == 1.0 else f"+pseudo-weight={ns.pseudo_weight:g}"
    for threshold in ns.self_train or []:
        names += [f"{s}+self-train={threshold:g}{weight}" for s in ns.strategies if "+" not in s]
    for n in ns.cold_start or []:
        names += [f"{s}+cold-start={n}" for s in ns.strategies if "+" not in s]
    for name in names:
        parse_name(name)
    return names


def run(ns: argparse.Namespace) -> None:
    from benchmarks._al_sim import full_accuracy, load_dataset

    ds = load_dataset(ns.data)
    full = full_accuracy(ds, ns.model)
    seeds = range(ns.first_seed, ns.first_seed + ns.seeds)
    names = with_training_changes(ns)
    jobs = [(ns.data, s, seed, ns.batch, ns.max_labels, ns.model, ns.noise, ns.pseudo_start)
            for seed in seeds for s in names]
    out: dict[str, Any] = {"data": ds["name"], "batch": ns.batch, "max_labels": ns.max_labels, "full_accuracy": full,
                           "seeds": ns.seeds, "model": ns.model, "noise": ns.noise, "pseudo_start": ns.pseudo_start,
                           "curves": {name: {} for name in names}, "seconds": {}}
    with ProcessPoolExecutor(ns.jobs) as pool:  # each curve is written as soon as it ends: a stopped run keeps them
        for future in as_completed([pool.submit(_job, job) for job in jobs]):
            name, seed, curve, secs = future.result()
            out["curves"][name][str(seed)] = curve
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


def _boot(ratios: np.ndarray, rng: np.random.Generator, B: int = 10_000, stat: Any = np.mean) -> tuple[float, float]:
    """95% bootstrap interval of ``stat`` (the mean unless given) over ``ratios`` resampled."""
    idx = rng.integers(0, ratios.size, (B, ratios.size))
    stats = stat(ratios[idx], axis=1)
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def _load(paths: list[str], merge: bool) -> list[dict[str, Any]]:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    if not merge:
        return runs
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for res in runs:
        key = (res["data"], res["batch"], res["max_labels"], res.get("model", "warm-lr"), res.get("noise", 0.0))
        into = merged.setdefault(key, {**res, "curves": {}, "seconds": {}, "seeds": 0})
        if abs(into["full_accuracy"] - res["full_accuracy"]) > 1e-9:
            raise SystemExit(f"cannot merge runs of {key} with different full-data accuracy")
        for name, curves in res["curves"].items():
            into["curves"].setdefault(name, {}).update(curves)
        into["seeds"] = len(set().union(*(set(c) for c in into["curves"].values())))
    return list(merged.values())


def report(paths: list[str], merge: bool = False, at: list[int] | None = None) -> None:
    rng = np.random.default_rng(0)
    for res in _load(paths, merge):
        full = res["full_accuracy"]
        print(f"\n{res['data']}, batch {res['batch']}, budget {res['max_labels']} labels, {res['seeds']} paired seeds, "
              f"model {res.get('model', 'warm-lr')}, its full-data accuracy {full:.3f}"
              + (f", answers wrong with probability {res['noise']:g}" if res.get("noise") else ""))
        base = res["curves"].get("margin")
        names = list(res["curves"])
        groups = [("strategy", [n for n in names if "+" not in n]),
                  ("training change (same protocol; ratios to plain margin)", [n for n in names if "+" in n])]
        if base is None:
            print("\n(no ratio tables: this run has no plain 'margin' row to compare with; add margin to --strategies)")
            groups = []
        for title, group in groups:
            if not group:
                continue
            print(f"\n| {title} | labels to 95% (median) | ratio to margin [95% CI] | labels to 98% (median) | ratio to margin [95% CI] | AULC | AULC - margin [95% CI] |")
            print("|---|---|---|---|---|---|---|")
            for name in group:
                _row(name, res["curves"][name], base, res, full, rng)
        if at:
            _accuracy_at(res, at)


def _accuracy_at(res: dict[str, Any], at: list[int]) -> None:
    """Each run's test accuracy when it had exactly N labels (a round boundary), per seed."""
    print("\n| row | seed | " + " | ".join(f"accuracy at {n} labels" for n in at) + " |")
    print("|---|---|" + "---|" * len(at))
    for name, curves in res["curves"].items():
        for seed in sorted(curves, key=int):
            points = {int(n): acc for n, acc in curves[seed]}
            print(f"| {name} | {seed} | " + " | ".join(f"{points[n]:.3f}" if n in points else "-" for n in at) + " |")


def _row(name: str, curves: dict[str, Any], base: dict[str, Any], res: dict[str, Any], full: float,
         rng: np.random.Generator) -> None:
    seeds = sorted(set(base) & set(curves), key=int)  # paired: seeds both have finished
    if not seeds:
        return
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
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed+seeds-1 (e.g. held-out seeds for tuning)")
    p.add_argument("--strategies", nargs="+", default=DEFAULT)
    p.add_argument("--self-train", nargs="+", type=float, metavar="THRESHOLD",
                   help="also run every strategy with self-training at each threshold (a training change)")
    p.add_argument("--pseudo-weight", type=float, default=1.0, help="weight of pseudo-labels with --self-train")
    p.add_argument("--cold-start", nargs="+", type=int, metavar="N",
                   help="also run every strategy from N labels picked by the cold-start selector instead of the random seed labels")
    p.add_argument("--model", default="warm-lr", choices=["warm-lr", "committee", "mc-dropout"],
                   help="the model every strategy of the run uses (committee: for qbc-*, mc-dropout: for bald)")
    p.add_argument("--noise", type=float, default=0.0, metavar="P",
                   help="the oracle errs with probability P (another class, uniformly; the same answers for every "
                        "strategy of a seed), as a crowd does; the eval split stays true")
    p.add_argument("--pseudo-start", choices=["previous", "base"], default="previous",
                   help="where a pseudo-labeled fit starts its solver: the last round's pseudo-labeled fit (faster) "
                        "or this round's labeled-only fit (how tables before it was added were measured)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default="labels.json")
    p.add_argument("--report", nargs="+", help="print the tables of earlier runs")
    p.add_argument("--merge", action="store_true", help="with --report: pool runs of the same data, batch, budget")
    p.add_argument("--at", nargs="+", type=int, metavar="N", help="with --report: also each run's accuracy at N labels")
    ns = p.parse_args()
    if ns.report:
        report(ns.report, ns.merge, ns.at)
    else:
        run(ns)


if __name__ == "__main__":
    main()
