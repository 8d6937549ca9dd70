"""Where a loop's model still errs: after a strategy has bought ``--labels`` labels (the label
benchmark's protocol, :func:`benchmarks._al_sim.rounds`), the eval split's errors grouped by how
many labels their true class holds. It tells whether a strategy could still gain by finding
under-labeled classes, or whether the errors sit among classes that already have labels.

    .venv/bin/python benchmarks/errors_by_labels.py --data ../shared/data/clinc150 --batch 50 --labels 1000 --seed 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BINS = ((0, 0), (1, 2), (3, 4), (5, 7), (8, 12), (13, None))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="digits, or a folder such as ../shared/data/clinc150")
    p.add_argument("--strategy", default="margin")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--labels", type=int, default=1000, help="stop once this many labels are bought")
    p.add_argument("--seed", type=int, default=100)
    ns = p.parse_args()
    from benchmarks._al_sim import load_dataset, rounds

    ds = load_dataset(ns.data)
    *_, (labeled, model, Xte) = rounds(ds, ns.strategy, ns.seed, ns.batch, ns.labels)
    yte = ds["yte"]
    n_classes = int(max(ds["y"].max(), yte.max()) + 1)
    pred = np.asarray(model.classes_)[model.predict_proba(Xte).argmax(1)]
    counts = np.bincount(ds["y"][labeled], minlength=n_classes)
    wrong = pred != yte
    print(f"{ds['name']}, {ns.strategy}, batch {ns.batch}, seed {ns.seed}: {labeled.size} labels, "
          f"eval accuracy {1 - wrong.mean():.3f}, {int(wrong.sum())} errors\n")
    print("| labels of the true class | classes | their eval accuracy | share of the errors |")
    print("|---|---|---|---|")
    for lo, hi in BINS:
        in_bin = (counts >= lo) & (counts <= (hi if hi is not None else counts.max()))
        rows = in_bin[yte]
        acc = f"{1 - wrong[rows].mean():.3f}" if rows.any() else "-"
        share = wrong[rows].sum() / max(1, wrong.sum())
        print(f"| {lo}{'' if hi == lo else f'-{hi}' if hi is not None else '+'} | {int(in_bin.sum())} | {acc} | {share:.2f} |")


if __name__ == "__main__":
    main()
