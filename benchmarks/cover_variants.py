"""The label benchmark (``benchmarks/loop_labels.py``) with margin-coverage's cover, or the cold
start's picks, replaced by a variant, for exploring; the product is unchanged. Every argument
after ``--variant NAME`` goes to ``loop_labels.py``; its ``default`` row then runs the variant
(``--configs 'NAME={}'`` names that row, so the file joins a run of the product's rows with
``--merge``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cover_variants.py --variant top4k --data ../shared/data/snips --batch 50 --max-labels 1000 --seeds 10 --first-seed 10 --configs default --jobs 2 --out v_s50.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cover_variants.py --variant labeled --data ../shared/data/clinc150 --batch 10 --max-labels 2000 --seeds 10 --first-seed 10 --configs 'labeled={}' --jobs 2 --out c10_lab.json

Variants:
- ``top4k``: only the ``4 x k`` smallest-margin items of the (gap-filtered) shortlist may be
  picked; the cover's cost still counts every shortlisted item. The distances are 4k x n instead
  of n x n, and a pick evaluates at most 4k rows.
- ``typiclust``: not the cover but the cold start (``ColdStart``, the first round's picks): in
  each cluster the most typical item as TypiClust defines it (the inverse of its mean distance
  to its 20 nearest neighbours in the cluster; Hacohen et al., ICML 2022), not the item nearest
  the centroid.
- ``powerP`` (e.g. ``power4``): the cover's weights (each shortlisted item's margin score, 1 -
  its top-two gap) raised to the power P, so the cover leans harder towards the least sure
  items; the first pick and the shortlist are the product's. Since 2026-12-06 the product's
  opt-in ``strategy.params.weight_power: P`` does the same (identical curves: digits at batch
  10, seeds 10-12), e.g. ``loop_labels.py --configs 'p4={"strategy": {"name":
  "margin-coverage", "params": {"weight_power": 4}}}'``; the variant stays so that the commands
  of the benchmark log run as written.
- ``handoverC`` (e.g. ``handover4``): where fewer than ``C x k`` shortlisted items pass the
  gap filter (the model sure of most of the pool: the top of the curve), the batch is margin's
  own top k, no cover.
- ``labeled``: the cover starts from the labeled items as centers already chosen (as
  ``pending: true`` does with the items in people's hands), so it picks uncertain items far from
  what is labeled; the first pick is then the one that most lowers the cost.
- ``medoid``: the cover's first pick is the shortlist's weighted medoid (the item whose choice
  alone leaves the smallest weighted sum of squared distances: the greedy's own first step from
  no center), not the smallest margin; the rest as the product's.
- ``recentR`` (e.g. ``recent4``): the same with only the items picked in the last ``R`` rounds
  as centers (the picks of this process's last ``R`` covers that are labeled now), so that at a
  small batch the cover goes on where the last rounds' covers stopped, as one cover of ``R + 1``
  batches would.

The patch is applied before ``loop_labels.py`` starts its worker processes (forked, so they
inherit it); a run under another start method would run the product's cover.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def top_cover(F: np.ndarray, k: int, w: np.ndarray | None, m: int) -> np.ndarray:
    """Greedy weighted cover of all rows of ``F`` by ``k`` of its first ``m`` rows (the first pick
    row 0), as the product's lazy greedy (:func:`clicloop.strategies.diversity._next_pick`)."""
    from clicloop.strategies.diversity import _next_pick, _reductions, pairwise_sq

    n = F.shape[0]
    m = min(n, max(m, k))
    w32 = np.ones(n, dtype=np.float32) if w is None else np.asarray(w, dtype=np.float32)
    Dw = pairwise_sq(F[:m], F) * w32[None, :]

    def rows(idx: np.ndarray) -> np.ndarray:
        return Dw[idx]

    chosen = [0]
    d2w = Dw[0].copy()
    bound = np.full(m, -np.inf, dtype=np.float32)
    live = np.flatnonzero(d2w[:m] > 0)
    if live.size:
        bound[live] = _reductions(rows(live), d2w)
    bound[0] = -np.inf  # the first pick (its distance to itself may round above 0)
    while len(chosen) < k:
        i = _next_pick(rows, d2w, bound)
        if i < 0:
            rest = np.setdiff1d(np.arange(m), chosen)
            chosen.extend(int(j) for j in rest[: k - len(chosen)])
            break
        chosen.append(i)
        np.minimum(d2w, Dw[i], out=d2w)
        bound[i] = -np.inf
        bound[d2w[:m] <= 0] = -np.inf
    return np.array(chosen, dtype=np.int64)


def patch(variant: str) -> None:
    """Apply ``variant``: ``top4k`` replaces the cover ``MarginCoverage.select`` calls
    (``coverage.kmeans_pp``; a cover around pending items, continuous mode's ``pending: true``,
    stays the product's), ``powerP`` and ``handoverC`` wrap it, ``labeled`` wraps
    ``MarginCoverage.select``, ``typiclust`` replaces ``ColdStart._representative``."""
    from clicloop.strategies import coverage

    if variant == "labeled":
        return _patch_labeled(coverage)
    if variant.startswith("recent"):
        return _patch_labeled(coverage, int(_number(variant, "recent")))
    if variant == "typiclust":
        return _patch_typiclust()
    plain = coverage.kmeans_pp
    if variant.startswith("handover"):
        return _patch_handover(coverage, plain, _number(variant, "handover"))
    if variant.startswith("power"):
        return _patch_power(coverage, plain, _number(variant, "power"))
    if variant == "medoid":
        return _patch_medoid(coverage, plain)
    if variant != "top4k":
        raise SystemExit(f"unknown variant {variant!r}: top4k, powerP, handoverC, medoid, labeled, recentR, typiclust")

    def cover(F: np.ndarray, k: int, rng: np.random.Generator, *, centers: Any = None, first: Any = None,
              trials: int = 1, weights: Any = None) -> np.ndarray:
        if centers is not None:
            return plain(F, k, rng, centers=centers, first=first, trials=trials, weights=weights)
        return top_cover(F, k, weights, 4 * k)

    coverage.kmeans_pp = cover


def _number(variant: str, prefix: str) -> float:
    try:
        return float(variant[len(prefix):])
    except ValueError as e:
        raise SystemExit(f"--variant {variant!r}: {prefix} takes a number, e.g. {prefix}4") from e


def _patch_handover(coverage: Any, plain: Any, times: float) -> None:
    """The cover ``MarginCoverage.select`` calls, returning the shortlist's first k rows (margin's
    top k: the shortlist is best first) where fewer than ``times x k`` rows passed the gap filter
    (a cover around pending items stays the product's)."""

    def cover(F: np.ndarray, k: int, rng: np.random.Generator, *, centers: Any = None, first: Any = None,
              trials: int = 1, weights: Any = None) -> np.ndarray:
        if centers is None and F.shape[0] < times * k:
            return np.arange(min(k, F.shape[0]), dtype=np.int64)
        return plain(F, k, rng, centers=centers, first=first, trials=trials, weights=weights)

    coverage.kmeans_pp = cover


def _patch_power(coverage: Any, plain: Any, power: float) -> None:
    """The cover ``MarginCoverage.select`` calls, its weights raised to ``power``."""

    def cover(F: np.ndarray, k: int, rng: np.random.Generator, *, centers: Any = None, first: Any = None,
              trials: int = 1, weights: Any = None) -> np.ndarray:
        w = None if weights is None else np.asarray(weights, dtype=np.float64) ** power
        return plain(F, k, rng, centers=centers, first=first, trials=trials, weights=w)

    coverage.kmeans_pp = cover


def _patch_medoid(coverage: Any, plain: Any) -> None:
    """The cover ``MarginCoverage.select`` calls, its first pick the weighted medoid of the shortlist."""
    from clicloop.strategies.diversity import pairwise_sq

    def cover(F: np.ndarray, k: int, rng: np.random.Generator, *, centers: Any = None, first: Any = None,
              trials: int = 1, weights: Any = None) -> np.ndarray:
        if centers is None and F.shape[0] > 1:
            w = np.ones(F.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
            first = int(np.argmin(pairwise_sq(F, F).astype(np.float64) @ w))
        return plain(F, k, rng, centers=centers, first=first, trials=trials, weights=weights)

    coverage.kmeans_pp = cover


def _patch_labeled(coverage: Any, rounds: int | None = None) -> None:
    """``MarginCoverage.select`` covering around the labeled items (and any pending ones); with
    ``rounds``, around only those of the labeled items this process's last ``rounds`` covers
    picked (a process runs one loop at a time: picks no longer labeled belong to an earlier run)."""
    import copy

    from clicloop.strategies.select import SelectContext

    plain = coverage.MarginCoverage.select
    recent: list[np.ndarray] = []

    def select(self: Any, model: Any, X: Any, candidates: Any, k: int, rng: Any, *, chunk_size: int, ids: Any,
               context: Any) -> Any:
        around = copy.copy(self)
        around.pending = True
        labeled = np.asarray(context.labeled, dtype=np.int64)
        if rounds is None:
            centers = labeled
        else:
            recent[:] = [p for p in recent[-rounds:] if np.isin(p, labeled).all()]
            centers = np.concatenate(recent) if recent else np.empty(0, dtype=np.int64)
        held = np.concatenate([np.asarray(context.pending, dtype=np.int64), centers])
        ctx = SelectContext(labeled=context.labeled, pending=held, seconds=context.seconds)
        picks = plain(around, model, X, candidates, k, rng, chunk_size=chunk_size, ids=ids, context=ctx)
        if rounds is not None:
            recent.append(np.asarray(picks, dtype=np.int64))
        return picks

    coverage.MarginCoverage.select = select


def most_typical(F: np.ndarray, knn: int = 20) -> int:
    """The row of ``F`` with the smallest mean squared distance to its ``knn`` nearest other rows."""
    from clicloop.strategies.diversity import pairwise_sq

    if F.shape[0] <= 2:
        return 0
    D = pairwise_sq(F, F)
    np.fill_diagonal(D, np.inf)
    m = min(knn, F.shape[0] - 1)
    near = np.partition(D, m - 1, axis=1)[:, :m]
    return int(np.argmin(near.mean(axis=1)))


def _patch_typiclust() -> None:
    """``ColdStart`` representing each cluster by its most typical item, not its centroid's nearest."""
    from clicloop.strategies import diversity as dv

    def representative(F: np.ndarray, members: np.ndarray, center: np.ndarray) -> int:
        return int(members[most_typical(F[members])])

    dv.ColdStart._representative = staticmethod(representative)


def main() -> None:
    from benchmarks import loop_labels

    loop_labels.main_with_variant(patch, __doc__)


if __name__ == "__main__":
    main()
