"""What the first picks look like: random seed labels against cold-start picks (classes covered,
accuracy of the first model), and the class mix of a strategy's first batch.

    .venv/bin/python benchmarks/first_picks.py --data ../shared/data/clinc150 --seeds 0 1 2
    .venv/bin/python benchmarks/first_picks.py --data digits --seeds 0 --first-batch qbc-kl qbc-vote-entropy \\
        --model committee --batch 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--first-batch", nargs="*", default=[], metavar="STRATEGY", help="also show these strategies' first batch")
    p.add_argument("--model", default="warm-lr", help="model for --first-batch: warm-lr, committee or mc-dropout")
    p.add_argument("--batch", type=int, default=50)
    ns = p.parse_args()
    from benchmarks._al_sim import WarmLR, load_dataset, other_model
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager
    from clicloop.orchestrator.seeding import rng_for
    from clicloop.strategies.diversity import ColdStart
    from clicloop.strategies.select import SelectContext, select

    ds = load_dataset(ns.data)
    X, y, n = ds["X"], ds["y"], len(ds["y"])
    n_classes = int(max(y.max(), ds["yte"].max()) + 1)
    registry = Registry(get_plugin_manager(load_entrypoints=False))
    print(f"| seed | starting set ({ds['seed_size']} items) | classes covered (of {n_classes}) | first model's accuracy |")
    print("|---|---|---|---|")
    for seed in ns.seeds:
        sets = {"random": np.sort(np.random.default_rng(seed).choice(n, ds["seed_size"], replace=False)),
                "cold-start": np.sort(ColdStart().select(None, X, np.arange(n), ds["seed_size"], rng_for(seed, "cold-start"),
                                                         chunk_size=65536, ids=None, context=SelectContext()))}
        for name, lab in sets.items():
            m = WarmLR(n_classes, ds["C"]).fit(X[lab], y[lab])
            acc = float((m.predict_proba(ds["Xte"]).argmax(1) == ds["yte"]).mean())
            print(f"| {seed} | {name} | {np.unique(y[lab]).size} | {acc:.3f} |")
    if not ns.first_batch:
        return
    print(f"\n| seed | strategy (model {ns.model}) | classes in the seed labels | classes in the first batch of {ns.batch} | largest class share of the batch |")
    print("|---|---|---|---|---|")
    for seed in ns.seeds:
        lab = np.sort(np.random.default_rng(seed).choice(n, ds["seed_size"], replace=False))
        model = WarmLR(n_classes, ds["C"]) if ns.model == "warm-lr" else other_model(ns.model, ds["C"], seed)
        model.fit(X[lab], y[lab])
        cand = np.setdiff1d(np.arange(n), lab)
        for name in ns.first_batch:
            picked = select(registry.create("strategy", name, {}), model, X, cand, ns.batch, rng_for(seed, "select", 0),
                            chunk_size=65536, context=SelectContext(labeled=lab))
            counts = np.bincount(y[picked], minlength=n_classes)
            print(f"| {seed} | {name} | {np.unique(y[lab]).size} | {int((counts > 0).sum())} | "
                  f"{counts.max()} of {picked.size} (class {int(counts.argmax())}) |")


if __name__ == "__main__":
    main()
