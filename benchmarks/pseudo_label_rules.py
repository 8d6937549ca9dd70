"""Which pseudo-labels help: along one margin-coverage run, at the given label counts, the model
is refitted with the pool's label-spreading pseudo-labels kept by each rule, and its eval
accuracy printed beside the plain fit's, with how many items each rule keeps and how often their
spread label is right. This chose ``+label-spread=0+agree=1`` (the loop's ``loop.pseudo_labels``
default) on the tuning seed 100, before the evaluation seeds ran (docs/benchmarks/log.md).

    .venv/bin/python benchmarks/pseudo_label_rules.py --data ../shared/data/clinc150 --batch 50 --at 200 400 700 1000 1500 --seed 100
    .venv/bin/python benchmarks/pseudo_label_rules.py --data digits --batch 10 --at 20 40 60 100 150 200 --seed 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name: (keep the spread labels at or above this quantile of confidence, require the model to agree, weight)
RULES = {
    "surest 75%": (0.25, False, 1.0),
    "surest 75%, agreeing": (0.25, True, 1.0),
    "surest 75%, weight 0.2": (0.25, False, 0.2),
    "surest 10%": (0.9, False, 1.0),
    "every agreeing item": (0.0, True, 1.0),
    "every agreeing item, weight 0.2": (0.0, True, 0.2),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="digits, or a folder such as ../shared/data/clinc150")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--at", nargs="+", type=int, default=[20, 60, 100, 200], help="label counts to look at")
    p.add_argument("--seed", type=int, default=100, help="the run's seed (100+: held out from the label runs)")
    ns = p.parse_args()
    from sklearn.semi_supervised import LabelSpreading

    from benchmarks._al_sim import load_dataset, rounds
    from benchmarks._training import _knn_graph, _pseudo_fit

    ds = load_dataset(ns.data)
    X, y = ds["X"], ds["y"]
    graph = _knn_graph(X)
    print(f"{ds['name']}, margin-coverage, batch {ns.batch}, seed {ns.seed}: eval accuracy "
          "(pseudo-labeled items kept, share of their spread labels right)\n")
    print("| labels | plain | " + " | ".join(RULES) + " |")
    print("|---|---|" + "---|" * len(RULES))
    for labeled, model, Xte in rounds(ds, "margin-coverage", ns.seed, ns.batch, max(ns.at)):
        if labeled.size not in ns.at:
            continue
        partial = np.full(len(X), -1)
        partial[labeled] = y[labeled]
        spread = LabelSpreading(kernel=lambda a, b: graph, alpha=0.2, max_iter=100).fit(X, partial)
        unl = np.setdiff1d(np.arange(len(X)), labeled)
        conf, lab = spread.label_distributions_[unl].max(axis=1), spread.transduction_[unl]
        pred = model.predict_proba(X[unl]).argmax(axis=1)
        cells = [f"{_accuracy(model, Xte, ds['yte']):.3f}"]
        for quantile, agree, weight in RULES.values():
            keep = (conf >= np.quantile(conf, quantile)) & ((lab == pred) if agree else True)
            fitted = _pseudo_fit(model, X, y, labeled, unl[keep], lab[keep], weight)
            right = float((lab[keep] == y[unl[keep]]).mean())
            cells.append(f"{_accuracy(fitted, Xte, ds['yte']):.3f} ({int(keep.sum())}, {right:.1%})")
        print(f"| {labeled.size} | " + " | ".join(cells) + " |", flush=True)


def _accuracy(model: object, Xte: np.ndarray, yte: np.ndarray) -> float:
    return float((model.predict_proba(Xte).argmax(axis=1) == yte).mean())  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
