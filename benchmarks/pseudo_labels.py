"""How many pool items a model is sure about, and how often its label for them is right: the
supply and the precision of self-training's pseudo-labels (``margin+self-train=T`` rows of
``strategies_labels.py``), for the warm-lr model fitted on n random labeled items.

    .venv/bin/python benchmarks/pseudo_labels.py --data ../shared/data/clinc150 --labels 200 500 1000 2000 --seed 100
    .venv/bin/python benchmarks/pseudo_labels.py --data digits --labels 50 --seed 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="digits, or a folder such as ../shared/data/clinc150")
    p.add_argument("--labels", nargs="+", type=int, default=[50, 100], help="sizes n of the random labeled sets")
    p.add_argument("--thresholds", nargs="+", type=float, default=[0.7, 0.8, 0.9, 0.95, 0.99])
    p.add_argument("--seed", type=int, default=100, help="draws the labeled sets (100+: held out from the label runs)")
    ns = p.parse_args()
    from benchmarks._al_sim import WarmLR, load_dataset

    ds = load_dataset(ns.data)
    X, y = ds["X"], ds["y"]
    n_classes = int(max(y.max(), ds["yte"].max()) + 1)
    print(f"{ds['name']}, warm-lr model (C={ds['C']:g}) on n random labeled items, seed {ns.seed}\n")
    print("| n labeled | threshold | unlabeled items at or above it | their predicted label right |")
    print("|---|---|---|---|")
    for n in ns.labels:
        lab = np.random.default_rng(ns.seed).choice(len(y), n, replace=False)
        unl = np.setdiff1d(np.arange(len(y)), lab)
        P = WarmLR(n_classes, ds["C"]).fit(X[lab], y[lab]).predict_proba(X[unl])
        top, pred = P.max(axis=1), P.argmax(axis=1)
        for t in ns.thresholds:
            sure = top >= t
            right = f"{(pred[sure] == y[unl][sure]).mean():.1%}" if sure.any() else "-"
            print(f"| {n} | {t:g} | {int(sure.sum())} of {unl.size} | {right} |")


if __name__ == "__main__":
    main()
