"""The label benchmark (``benchmarks/loop_labels.py``) with the pseudo-labels' weight in the
trained model's fit changed, for exploring; the product is unchanged. Every argument after
``--variant NAME`` goes to ``loop_labels.py``; its ``default`` row then runs the variant
(``--configs 'NAME={}'`` names that row, so the file joins a run of the product's rows with
``--merge``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pseudo_weight_variants.py --variant c2.5 --data digits --batch 10 --max-labels 400 --seeds 10 --configs 'c2.5={}' --jobs 2 --out d10_c25.json

Variants (the product weighs each pseudo-labeled row 1, like a human label):
- ``wW`` (e.g. ``w0.5``): each pseudo-labeled row weighs W.
- ``cA`` (e.g. ``c2.5``): each weighs min(1, A x classes / human labels), so the pseudo-labels
  fade as the human labels grow past A a class (at A = 2.5 on digits' 10 classes: 1 up to 25
  labels, 0.25 at 100, 0.0625 at 400).

Only the trained model's fit (the one the round evaluates and deploys) changes: the strategy
scores the pool with the fit on human labels alone, so the picks are the product's as long as
the newest-label check (``loop.pseudo_labels.newest_check``) makes the same choices.
``benchmarks/newest_labels_check.py record --weights`` measures the same weights offline, each
round's fit refitted from scratch (these runs warm-start each round's fit from the last, as the
product does). The patch is applied before ``loop_labels.py`` forks its workers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def weight_for(variant: str, labels: np.ndarray) -> float:
    """The pseudo-labels' weight for a round with these human ``labels``."""
    try:
        value = float(variant[1:])
    except ValueError as e:
        raise SystemExit(f"--variant {variant!r}: wW or cA with a number, e.g. w0.5 or c2.5") from e
    if variant[0] == "w":
        return value
    if variant[0] == "c":
        return min(1.0, value * np.unique(labels).size / max(len(labels), 1))
    raise SystemExit(f"unknown variant {variant!r}: wW or cA, e.g. w0.5 or c2.5")


def patch(variant: str) -> None:
    """Weigh the pseudo-labeled rows of the trained model's fit (``_fit_trained``'s call of
    ``with_pseudo_labels``, the one given the human-label fit and remembering the spread)."""
    from clicloop.orchestrator.training import semisup
    from clicloop.orchestrator.training.models import confidence_weights

    weight_for(variant, np.array(["a"]))  # refuse a bad name before any loop runs
    plain = semisup.with_pseudo_labels

    def weighted(labeler: Any, X: Any, idx: Any, y: Any, fit_kwargs: Any, model: Any = None, exclude: Any = None,
                 remember: bool = True) -> Any:
        X2, y2, kwargs = plain(labeler, X, idx, y, fit_kwargs, model, exclude, remember)
        if model is None or not remember or len(y2) == len(y):
            return X2, y2, kwargs
        w = weight_for(variant, np.asarray(y))
        if not kwargs:
            kwargs = {next(iter(confidence_weights({}, [], model))): np.ones(len(y2))}
        return X2, y2, {key: np.concatenate([v[:len(y)], v[len(y):] * w]) for key, v in kwargs.items()}

    semisup.with_pseudo_labels = weighted


def main() -> None:
    from benchmarks import loop_labels

    loop_labels.main_with_variant(patch, __doc__)


if __name__ == "__main__":
    main()
