"""Seconds of margin-coverage's cover (``kmeans_pp(..., trials=0)``, the greedy the default
strategy runs on its shortlist), on shortlists as the loop builds them, against another version.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cover_speed.py --data ../shared/data/snips
    git show 7cfdc1e:strategies/diversity.py > /tmp/cover_7cfdc1e.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cover_speed.py --data ../shared/data/snips --against /tmp/cover_7cfdc1e.py

A function-level figure, not the loop (``benchmarks/round_breakdown.py`` times the loop's steps):
a scaled logistic regression (the product's ``scaled-logreg``) fitted on ``--labels`` random
labels scores the pool by margin; each shortlist is the ``n`` smallest-margin items, weighted by
their margin score, as ``MarginCoverage.select`` covers them (``--data``: a folder as
``benchmarks/loop_labels.py`` reads it, or ``digits``). Each size is timed ``--repeat`` times,
this version and ``--against`` (a ``diversity.py`` of another commit) side by side in one run;
"same picks" compares the two covers' picks; "its distances" times the shortlist's pairwise
squared distances alone (``pairwise_sq``), the part of a cover that does not depend on the picks.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pool(data: str) -> tuple[np.ndarray, np.ndarray]:
    if data == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data.astype(np.float32), d.target.astype(str)
    folder = Path(data)
    rows = [json.loads(line) for line in open(folder / f"{folder.name}.jsonl", encoding="utf-8")]
    return np.load(folder / f"{folder.name}.minilm.npy").astype(np.float32), np.array([r["label"] for r in rows])


def shortlist_of(X: np.ndarray, y: np.ndarray, labels: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from clicloop.strategies.scores import margin

    rng = np.random.default_rng(seed)
    train = rng.choice(len(y), labels, replace=False)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[train], y[train])
    score = margin(model.predict_proba(X))
    short = np.argsort(-score, kind="stable")[:n]
    return X[short], score[short]


def load_module(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("clicloop.strategies._cover_against", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median_seconds(f: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        f()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timed(module: Any, F: np.ndarray, w: np.ndarray, k: int, repeat: int) -> tuple[float, np.ndarray]:
    """``module``'s cover of ``F``: its median seconds and its picks."""
    def cover() -> np.ndarray:
        return module.kmeans_pp(F, k, np.random.default_rng(0), first=0, trials=0, weights=w)

    return median_seconds(cover, repeat), cover()


def main() -> None:
    from clicloop.strategies import diversity

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--labels", type=int, default=500, help="random labels the scoring model is fitted on")
    p.add_argument("--sizes", type=int, nargs="+", default=[300, 1000], help="shortlist sizes (items covered)")
    p.add_argument("--k", type=int, nargs="+", default=[10, 50], help="picks per cover (the batch)")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--against", metavar="FILE", help="a diversity.py of another commit, timed beside this one")
    ns = p.parse_args()
    X, y = pool(ns.data)
    other = load_module(ns.against) if ns.against else None
    print(f"{ns.data}: {X.shape[0]} x {X.shape[1]}, scoring model on {ns.labels} random labels; median of {ns.repeat}")
    print("| shortlist | picks | this version, ms | its distances, ms |" + (" against, ms | ratio | same picks |" if other else ""))
    print("|---|---|---|---|" + ("---|---|---|" if other else ""))
    for n in ns.sizes:
        F, w = shortlist_of(X, y, ns.labels, n, ns.seed)
        distances = median_seconds(lambda: diversity.pairwise_sq(F, F), ns.repeat)
        for k in ns.k:
            now, picks = timed(diversity, F, w, k, ns.repeat)
            row = f"| {n} | {k} | {now * 1000:.2f} | {distances * 1000:.2f} |"
            if other is not None:
                then, theirs = timed(other, F, w, k, ns.repeat)
                row += f" {then * 1000:.2f} | {now / then:.2f} | {'yes' if np.array_equal(picks, theirs) else 'no'} |"
            print(row)


if __name__ == "__main__":
    main()
