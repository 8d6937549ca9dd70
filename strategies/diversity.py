"""Batch strategies that look at the pool's geometry, not only at each item's score.

- :class:`KCenterGreedy`: the core-set / k-center greedy selection of O. Sener and S. Savarese,
  "Active Learning for Convolutional Neural Networks: A Core-Set Approach", ICLR 2018.
- :class:`ClusterMargin`: uncertainty first, diversity second, after G. Citovsky et al., "Batch
  Active Learning at Scale", NeurIPS 2021: the ``factor x k`` smallest-margin items, then
  k-means++ seeding (D. Arthur and S. Vassilvitskii, "k-means++: The Advantages of Careful
  Seeding", SODA 2007) among them, away from what is already labeled.
- :class:`DensityWeighted`: information density of B. Settles and M. Craven, "An Analysis of
  Active Learning Strategies for Sequence Labeling Tasks", EMNLP 2008: uncertainty x (mean
  cosine similarity to the pool)^beta, the pool represented by a seeded reference sample.
- :class:`ColdStart`: coverage of the pool with no model (TypiClust: G. Hacohen, A. Dekel and
  D. Weinshall, "Active Learning on a Budget: Opposite Strategies Suit High and Low Budgets",
  ICML 2022): cluster the pool into labeled + k clusters, then take the most typical item of
  each of the largest clusters that hold no label yet.

Every strategy here needs numeric features (``requires`` names ``"features"``) and returns
distinct pool indices, best first. Randomness comes only from the ``rng`` argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.types import Model
from clicloop.strategies.scores import Margin, ProbaStrategy, is_numeric
from clicloop.strategies.select import SelectContext, select_top_k


def features(X: Any, idx: np.ndarray, name: str) -> np.ndarray:
    if not is_numeric(X):
        raise StrategyError(f"{name} needs numeric features (a 2-D numeric pool); this pool has none")
    return np.asarray(X[idx], dtype=np.float32)


def pairwise_sq(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared euclidean distances between every row of ``A`` and every row of ``B``: |a|^2 - 2 a.b
    + |b|^2, clipped at 0, computed in place in the product's array (the same values, bit for bit,
    as the expression written out, without its three temporaries of the result's size)."""
    G = (A @ B.T).astype(np.result_type(A, B, np.float32), copy=False)
    G *= -2.0
    G += np.einsum("ij,ij->i", A, A)[:, None]
    G += np.einsum("ij,ij->i", B, B)[None, :]
    return np.maximum(G, 0.0, out=G)


def _sq_dist_to(F: np.ndarray, C: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Squared euclidean distance of each row of ``F`` to its nearest row of ``C`` (bounded memory)."""
    out = np.full(F.shape[0], np.inf, dtype=np.float32)
    for s in range(0, C.shape[0], chunk):
        np.minimum(out, pairwise_sq(F, C[s : s + chunk]).min(axis=1), out=out)
    return out


def kmeans_pp(F: np.ndarray, k: int, rng: np.random.Generator, *, centers: np.ndarray | None = None,
              first: int | None = None, weights: np.ndarray | None = None, trials: int = 1) -> np.ndarray:
    """k-means++ seeding (Arthur and Vassilvitskii 2007): ``k`` row indices of ``F`` drawn with
    probability proportional to (weight x) squared distance to the nearest chosen row or to
    ``centers``. ``first`` fixes the first pick when there are no centers. ``trials > 1`` is
    greedy k-means++ (as scikit-learn's ``kmeans_plusplus``): each step draws ``trials``
    candidates and keeps the one that leaves the smallest total (weighted) squared distance;
    ``trials=0`` tries every row (deterministic greedy coverage after the first pick)."""
    k = min(k, F.shape[0])
    d2 = _sq_dist_to(F, centers) if centers is not None and len(centers) else np.full(F.shape[0], np.inf, np.float32)
    w = np.ones(F.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if trials == 0:
        return _greedy_cover(F, k, rng, d2, w, first)
    chosen: list[int] = []
    for _ in range(k):
        if np.isinf(d2).all():
            i = int(first) if first is not None else int(rng.integers(F.shape[0]))
        else:
            p = w * np.where(np.isfinite(d2), d2, 0.0)
            p[chosen] = 0.0
            total = p.sum()
            if total <= 0:
                i = int(rng.choice(np.setdiff1d(np.arange(F.shape[0]), chosen)))
            elif trials > 1:
                i = _best_of(F, d2, w, rng.choice(F.shape[0], size=trials, p=p / total))
            else:
                i = int(rng.choice(F.shape[0], p=p / total))
        chosen.append(i)
        np.minimum(d2, _sq_dist_to(F, F[i : i + 1]), out=d2)
    return np.array(chosen, dtype=np.int64)


def _costs(F: np.ndarray, d2: np.ndarray, w: np.ndarray, cands: np.ndarray, chunk: int = 256) -> np.ndarray:
    """For each candidate row, the weighted sum of squared distances to the nearest chosen row
    if it were chosen too."""
    cost = np.empty(cands.size)
    for s in range(0, cands.size, chunk):
        block = pairwise_sq(F[cands[s : s + chunk]], F)
        cost[s : s + chunk] = (np.minimum(block, d2[None, :]) * w[None, :]).sum(axis=1)
    return cost


def _best_of(F: np.ndarray, d2: np.ndarray, w: np.ndarray, cands: np.ndarray) -> int:
    """The candidate that leaves the smallest weighted sum of squared distances (ties: the first)."""
    return int(cands[int(np.argmin(_costs(F, d2, w, cands)))])


COVER_TABLE_BYTES = 64 << 20  # the cover's table of weighted distances at most this big; past it, rows as needed


def _greedy_cover(F: np.ndarray, k: int, rng: np.random.Generator, d2: np.ndarray, w: np.ndarray,
                  first: int | None) -> np.ndarray:
    """Greedy minimisation of the weighted k-means cost over every row: each pick is the row
    whose choice lowers the weighted sum of squared distances to the nearest pick most, its
    *reduction* ``sum_j w_j max(d2_j - D_ij, 0)`` (ties: the lowest row), among rows still at a
    distance; when none is left, the rest at random, as k-means++ does. Made lazy (M. Minoux,
    "Accelerated greedy algorithms for maximizing submodular set functions", 1978): a row's
    reduction only shrinks as rows are chosen, so a stale one bounds the fresh one, and a pick
    re-evaluates only rows whose stale bound is the highest left (:func:`_next_pick`). The
    weighted distances ``D_ij w_j`` are computed once (float32, as the features; n^2 x 4 bytes,
    at most :data:`COVER_TABLE_BYTES`, else rows as needed); a reduction is summed directly, not
    as a difference of two large totals, so float32 loses nothing that decides a pick."""
    n = F.shape[0]
    w32 = w.astype(np.float32)
    Dw = pairwise_sq(F, F) if n * n * 4 <= COVER_TABLE_BYTES else None
    if Dw is not None:
        Dw *= w32[None, :]

    def rows(idx: np.ndarray) -> np.ndarray:
        return Dw[idx] if Dw is not None else pairwise_sq(F[idx], F) * w32[None, :]

    chosen: list[int] = []
    if np.isinf(d2).all():
        chosen.append(int(first) if first is not None else int(rng.integers(n)))
        np.minimum(d2, _sq_dist_to(F, F[chosen[0] : chosen[0] + 1]), out=d2)
    d2w = (d2 * w32).astype(np.float32)
    bound = np.full(n, -np.inf, dtype=np.float32)  # a stale reduction; -inf: chosen, or at no distance
    live = np.flatnonzero(d2w > 0)
    live = live[~np.isin(live, chosen)]
    for s in range(0, live.size, 256):
        bound[live[s : s + 256]] = _reductions(rows(live[s : s + 256]), d2w)
    while len(chosen) < k:
        i = _next_pick(rows, d2w, bound)
        if i < 0:  # nothing left that lowers the cost: the rest at random, as k-means++ does
            rest = np.setdiff1d(np.arange(n), chosen)
            chosen.extend(int(j) for j in rng.choice(rest, k - len(chosen), replace=False))
            break
        chosen.append(i)
        np.minimum(d2w, rows(np.array([i]))[0], out=d2w)
        bound[i] = -np.inf
        bound[d2w <= 0] = -np.inf
    return np.array(chosen, dtype=np.int64)


def _reductions(block: np.ndarray, d2w: np.ndarray) -> np.ndarray:
    """For each row of ``block`` (weighted distances from a candidate), how much choosing it lowers
    the weighted sum of squared distances to the nearest chosen row (``d2w``)."""
    gain = np.subtract(d2w[None, :], block, out=block)  # a copy of the table's rows: overwritten
    np.maximum(gain, 0.0, out=gain)
    return gain.sum(axis=1, dtype=np.float32)


def _next_pick(rows: Callable[[np.ndarray], np.ndarray], d2w: np.ndarray, bound: np.ndarray) -> int:
    """The row with the largest fresh reduction (ties: the lowest row), or -1 when no row lowers
    the cost: re-evaluates the rows of highest stale bound (16, then 32, 64, ...) until the
    highest bound left (the lowest row among equals) is a fresh one. Updates ``bound`` for the
    rows it re-evaluated."""
    fresh = np.zeros(bound.size, dtype=bool)
    m = 16
    while True:
        top = int(np.argmax(bound))
        if not np.isfinite(bound[top]):
            return -1
        if fresh[top]:
            return top
        stale = np.where(fresh, -np.inf, bound)
        take = np.argpartition(stale, -m)[-m:] if stale.size > m else np.arange(stale.size)
        take = take[np.isfinite(stale[take])]  # holds a row of the highest stale bound: each pass makes progress
        bound[take] = _reductions(rows(take), d2w)
        fresh[take] = True
        m *= 2


def k_center_greedy(F: np.ndarray, k: int, centers: np.ndarray | None = None, first: int = 0) -> np.ndarray:
    """Farthest-first traversal (Sener and Savarese 2018): each pick is the row farthest from
    everything chosen or labeled (``centers``). Deterministic; ties go to the lowest row."""
    k = min(k, F.shape[0])
    d2 = _sq_dist_to(F, centers) if centers is not None and len(centers) else np.full(F.shape[0], np.inf, np.float32)
    chosen: list[int] = []
    for _ in range(k):
        i = first if np.isinf(d2).all() else int(np.argmax(d2))
        chosen.append(i)
        np.minimum(d2, _sq_dist_to(F, F[i : i + 1]), out=d2)
        d2[i] = -1.0
    return np.array(chosen, dtype=np.int64)


class KCenterGreedy:
    """Core-set selection (Sener and Savarese 2018): the batch that best covers the candidates,
    starting from the labeled items. Model-free: diversity only."""

    requires: tuple[str, ...] = ("features",)

    def __init__(self, max_candidates: int = 50_000):
        self.max_candidates = max_candidates

    def select(self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
               chunk_size: int, ids: np.ndarray | None, context: SelectContext) -> np.ndarray:
        cand = candidates
        if cand.size > self.max_candidates:  # bounded work on huge pools: a seeded subsample
            cand = np.sort(rng.choice(cand, self.max_candidates, replace=False))
        F = features(X, cand, "k-center greedy")
        centers = features(X, context.labeled, "k-center greedy") if context.labeled.size else None
        return cand[k_center_greedy(F, k, centers, first=int(rng.integers(cand.size)))]

    def __repr__(self) -> str:
        return f"KCenterGreedy(max_candidates={self.max_candidates})"


class ClusterMargin:
    """Cluster-margin (Citovsky et al. 2021): the ``factor x k`` smallest-margin candidates,
    then k-means++ seeding among them (first pick: the smallest margin), so the batch is
    uncertain and spread out. ``avoid_labeled`` starts the seeding away from labeled items.
    ``trials``: candidates drawn per pick, the best kept (greedy k-means++; 0: every candidate,
    deterministic, as :class:`clicloop.strategies.coverage.MarginCoverage`); ``weighted`` weighs the
    shortlist by its margin score."""

    requires: tuple[str, ...] = ("predict_proba", "features")

    def __init__(self, factor: int = 10, avoid_labeled: bool = False, trials: int = 1, weighted: bool = False):
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        if trials < 0:
            raise ValueError(f"trials must be >= 0 (0: every candidate), got {trials}")
        self.factor = factor
        self.avoid_labeled = avoid_labeled
        self.trials = trials
        self.weighted = weighted

    def select(self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
               chunk_size: int, ids: np.ndarray | None, context: SelectContext) -> np.ndarray:
        if model is None:
            raise StrategyError("cluster-margin needs a fitted model")
        top_rng, seed_rng = rng.spawn(2)
        short = select_top_k(Margin(), model, X, candidates, self.factor * k, top_rng, chunk_size=chunk_size, ids=ids)
        F = features(X, short, "cluster-margin")
        centers = features(X, context.labeled, "cluster-margin") if self.avoid_labeled and context.labeled.size else None
        w = Margin().score(model, X[short], seed_rng) if self.weighted else None
        return short[kmeans_pp(F, k, seed_rng, centers=centers, first=0, trials=self.trials, weights=w)]

    def __repr__(self) -> str:
        return (f"ClusterMargin(factor={self.factor}, avoid_labeled={self.avoid_labeled}, trials={self.trials}, "
                f"weighted={self.weighted})")


class _Densified(ProbaStrategy):
    @property
    def rng_free(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.base, "rng_free", False))

    def __init__(self, base: ProbaStrategy, refs: np.ndarray, beta: float):
        self.base, self.refs, self.beta = base, refs, beta

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray:
        u = np.asarray(self.base.score(model, X, rng), dtype=np.float64)
        F = np.asarray(X, dtype=np.float32)
        F = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
        density = np.clip((F @ self.refs.T).mean(axis=1), 0.0, None).astype(np.float64)
        return u * density**self.beta


class DensityWeighted:
    """Information density (Settles and Craven 2008): ``margin x similarity^beta``, where the
    similarity is the mean cosine similarity (clipped at 0) to ``n_ref`` seeded pool items."""

    requires: tuple[str, ...] = ("predict_proba", "features")

    def __init__(self, beta: float = 1.0, n_ref: int = 1000):
        self.beta = beta
        self.n_ref = n_ref

    def select(self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
               chunk_size: int, ids: np.ndarray | None, context: SelectContext) -> np.ndarray:
        if model is None:
            raise StrategyError("density-weighted needs a fitted model")
        ref_rng, top_rng = rng.spawn(2)
        ref = np.sort(ref_rng.choice(candidates, min(self.n_ref, candidates.size), replace=False))
        R = features(X, ref, "density-weighted")
        R /= np.maximum(np.linalg.norm(R, axis=1, keepdims=True), 1e-12)
        return select_top_k(_Densified(Margin(), R, self.beta), model, X, candidates, k, top_rng,
                            chunk_size=chunk_size, ids=ids)

    def __repr__(self) -> str:
        return f"DensityWeighted(beta={self.beta}, n_ref={self.n_ref})"


class ColdStart:
    """Typical, covering items with no model (Hacohen et al. 2022, TypiClust): k-means with
    labeled + k clusters over a seeded sample of at most ``max_candidates`` candidates; in each
    of the k largest clusters without a labeled item, the item closest to the centroid."""

    requires: tuple[str, ...] = ("features",)

    def __init__(self, max_candidates: int = 20_000, n_iter: int = 20):
        self.max_candidates = max_candidates
        self.n_iter = n_iter

    def select(self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
               chunk_size: int, ids: np.ndarray | None, context: SelectContext) -> np.ndarray:
        cand = candidates
        if cand.size > self.max_candidates:
            cand = np.sort(rng.choice(cand, self.max_candidates, replace=False))
        F = features(X, cand, "cold-start")
        L = features(X, context.labeled, "cold-start") if context.labeled.size else np.empty((0, F.shape[1]), np.float32)
        n_clusters = min(k + L.shape[0], F.shape[0])
        C = F[kmeans_pp(F, n_clusters, rng)]
        for _ in range(self.n_iter):  # Lloyd iterations, bounded
            assign = _nearest(F, C)
            for j in np.unique(assign):
                C[j] = F[assign == j].mean(axis=0)
        assign = _nearest(F, C)
        covered = set(_nearest(L, C).tolist()) if L.shape[0] else set()
        sizes = np.bincount(assign, minlength=n_clusters)
        order = [j for j in np.lexsort((np.arange(n_clusters), -sizes)) if j not in covered and sizes[j] > 0]
        picks = [self._representative(F, np.flatnonzero(assign == j), C[j]) for j in order[:k]]
        if len(picks) < k:  # fewer uncovered clusters than k: fill by farthest-first
            rest = np.setdiff1d(np.arange(F.shape[0]), picks)
            more = k_center_greedy(F[rest], k - len(picks), np.vstack([L, F[picks]]) if picks or L.shape[0] else None)
            picks.extend(rest[more].tolist())
        return cand[np.array(picks, dtype=np.int64)]

    @staticmethod
    def _representative(F: np.ndarray, members: np.ndarray, center: np.ndarray) -> int:
        """The row of ``F`` a cluster (its ``members``) is represented by: the one nearest its centroid."""
        d = ((F[members] - center) ** 2).sum(axis=1)
        return int(members[int(np.argmin(d))])

    def __repr__(self) -> str:
        return f"ColdStart(max_candidates={self.max_candidates}, n_iter={self.n_iter})"


def _nearest(F: np.ndarray, C: np.ndarray, chunk: int = 4096) -> np.ndarray:
    out = np.empty(F.shape[0], dtype=np.int64)
    c2 = np.einsum("ij,ij->i", C, C)
    for s in range(0, F.shape[0], chunk):
        out[s : s + chunk] = np.argmin(c2[None, :] - 2.0 * (F[s : s + chunk] @ C.T), axis=1)
    return out
