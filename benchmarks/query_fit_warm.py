"""The fit the strategy queries with, started cold or from the last round's coefficients: solver
iterations, the objective reached, and how many of margin's top-k picks the two fits share.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/query_fit_warm.py --data ../shared/data/clinc150 --batch 50 --rounds 20

A function-level figure, not the loop: a margin loop with the product's default model
(``scaled-logreg``) on a data folder as ``benchmarks/loop_labels.py`` reads it (random seed labels,
then margin's top ``--batch`` of a cold fit each round). Each round fits the labels cold (the
loop before 2026-12-05, commit 4352e9a), warm from the last round's cold fit at the model's
tolerance (what the loop does since) and at a tenth of it, and cold at 0.99x the tolerance (how
far a change that small moves the picks). The objective is scikit-learn's, summed: the log loss
of the labels plus ||w||^2 / 2C on the scaled features.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np


def load(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [json.loads(line) for line in open(folder / f"{folder.name}.jsonl", encoding="utf-8")]
    E = np.load(folder / f"{folder.name}.minilm.npy")
    labels, split = np.array([r["label"] for r in rows]), np.array([r["split"] for r in rows])
    train = np.flatnonzero((labels != "oos") & (split == "train"))
    return E[train], labels[train]


def margins(model, X: np.ndarray) -> np.ndarray:
    P = np.sort(model.predict_proba(X), axis=1)
    return P[:, -1] - P[:, -2]


def objective(model, X: np.ndarray, y: np.ndarray) -> float:
    lr = model[-1]
    P = lr.predict_proba(model[0].transform(X))
    return float(-np.log(P[np.arange(len(y)), np.searchsorted(lr.classes_, y)]).sum() + (lr.coef_ ** 2).sum() / (2 * lr.C))


def fit(start, X: np.ndarray, y: np.ndarray, **params) -> tuple[object, float]:
    model = copy.deepcopy(start)
    model.set_params(**params)
    began = time.perf_counter()
    return model.fit(X, y), time.perf_counter() - began


def main() -> None:
    from clicloop.orchestrator.training.logistic import scaled_logreg

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a folder holding <name>.jsonl and <name>.minilm.npy")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--seed-size", type=int, default=200)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    ns = p.parse_args()
    X, y = load(Path(ns.data))
    labeled = list(np.random.default_rng(ns.seed).choice(len(X), ns.seed_size, replace=False))
    tol = scaled_logreg().get_params()["logisticregression__tol"]
    print("| round | labels | cold: iterations, ms, objective | warm: iterations, ms, objective, shared picks | "
          "warm at tol/10: iterations, objective, shared picks | cold at 0.99 tol: shared picks |")
    print("|---|---|---|---|---|---|")
    previous = None
    for r in range(ns.rounds):
        idx = np.array(labeled)
        Xl, yl = X[idx], y[idx]
        cold, seconds = fit(scaled_logreg(), Xl, yl)
        m = margins(cold, X)
        m[idx] = np.inf
        top = np.argsort(m, kind="stable")[: ns.batch]

        def shared(model) -> str:
            other = margins(model, X)
            other[idx] = np.inf
            return f"{np.intersect1d(top, np.argsort(other, kind='stable')[: ns.batch]).size}/{ns.batch}"

        row = [str(r), str(len(idx)), f"{cold[-1].n_iter_[0]}, {seconds * 1000:.0f}, {objective(cold, Xl, yl):.3f}"]
        if previous is not None and np.array_equal(previous[-1].classes_, np.unique(yl)):
            warm, seconds = fit(previous, Xl, yl, logisticregression__warm_start=True)
            tight, _ = fit(previous, Xl, yl, logisticregression__warm_start=True, logisticregression__tol=tol / 10)
            row += [f"{warm[-1].n_iter_[0]}, {seconds * 1000:.0f}, {objective(warm, Xl, yl):.3f}, {shared(warm)}",
                    f"{tight[-1].n_iter_[0]}, {objective(tight, Xl, yl):.3f}, {shared(tight)}"]
        else:
            row += ["(other classes: cold)", ""]
        row.append(shared(fit(scaled_logreg(), Xl, yl, logisticregression__tol=0.99 * tol)[0]))
        print("| " + " | ".join(row) + " |", flush=True)
        previous = cold
        labeled += top.tolist()


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
