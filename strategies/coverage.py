"""Uncertainty first, then coverage: batches that are uncertain *and* typical of the uncertain
region, not its outliers.

- :class:`MarginCoverage` (clicloop's default strategy): the ``factor x k`` smallest-margin
  candidates (margin sampling, T. Scheffer et al., "Active Hidden Markov Models for Information
  Extraction", IDA 2001), then k items chosen greedily to cover them: each pick is the
  shortlisted item that most reduces the margin-weighted sum of squared distances from the
  shortlist to its nearest pick (the k-means objective, greedy as in the greedy k-means++ of
  scikit-learn's ``kmeans_plusplus``, here over every candidate). The shortlist-then-diversify
  recipe is that of cluster-margin (G. Citovsky et al., "Batch Active Learning at Scale",
  NeurIPS 2021) and of diverse mini-batch active learning (F. Zhdanov, arXiv:1901.05954, 2019);
  choosing the central items of the uncertain region follows the typicality argument of
  TypiClust (G. Hacohen et al., ICML 2022).
- :class:`DiverseMiniBatch`: Zhdanov's method itself, with scikit-learn's k-means.

Randomness comes only from the ``rng`` argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.types import Model
from clicloop.strategies.diversity import features, kmeans_pp, pairwise_sq
from clicloop.strategies.scores import Margin, is_numeric, margin
from clicloop.strategies.select import SelectContext, select_top_k, top_k_scored


class MarginCoverage:
    """The ``factor x k`` smallest-margin candidates (at most ``max_shortlist``, at least k),
    covered greedily by k of them, weighted when ``weighted`` by their margin score (1 - the gap
    between the two likeliest classes) raised to ``weight_power``; the first pick is the smallest
    margin. The pool is scored once (margin's pass, whose scores weigh the cover); the
    shortlist's weighted pairwise distances are computed once (float32, shortlist^2 x 4 bytes, at
    most 64 MB) and the greedy is lazy, so few rows are re-evaluated per pick. On a pool without
    numeric features (raw text) there are no distances, and it ranks by margin alone, so it works
    as a default on any pool.

    ``max_gap`` (default 0.5; None: off): only shortlisted items whose two likeliest classes are
    at most this far apart in probability are covered (never fewer than k): as the model grows
    sure of most of the pool, the shortlist shrinks towards margin's own top k. Measured with
    the real loop (docs/benchmarks/log.md, 2026-12-04): the same labels to 95% / 98% as without
    it, and final accuracy closer to margin's on digits and SNIPS.

    ``weight_power`` (default 1: the margin score itself): how hard the cover leans towards the
    least sure shortlisted items. Not the default: with 4, measured with the real loop on
    calibration seeds (docs/benchmarks/log.md, 2026-12-06), CLINC150 at batch 10 needed fewer
    labels to 95% (0.73x margin's against 0.76x), digits and SNIPS ended level with power 1,
    SNIPS at batch 10 needed more labels to 98% (0.62x against 0.57x) and CLINC150 at batch 50
    ended a little lower (-0.0004 accuracy).

    ``pending`` (default False; continuous mode only): items in someone's hands whose labels are
    still to come (``SelectContext.pending``) count as already chosen, so the cover goes around
    them instead of asking near them again; the first pick is then the one that most lowers the
    cost, not the smallest margin. Not the default: on digits (10 paired seeds, 2026-12-05) it
    needed as many labels to 95% as without and more to 98% (docs/benchmarks/log.md). A resumed
    version covers around the tasks held at the resume, not those held when it was first
    fitted, so a killed and resumed loop may rank differently from one never interrupted."""

    requires: tuple[str, ...] = ("predict_proba",)
    measure = staticmethod(margin)  # its uncertainty, for loop.relabel's doubtful-or-new contest

    def __init__(self, factor: int = 20, weighted: bool = True, max_shortlist: int = 4096, max_gap: float | None = 0.5,
                 pending: bool = False, weight_power: float = 1.0):
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        if max_shortlist < 1:
            raise ValueError(f"max_shortlist must be >= 1, got {max_shortlist}")
        if max_gap is not None and not 0 < max_gap <= 1:
            raise ValueError(f"max_gap must be in (0, 1], got {max_gap}")
        if not weight_power > 0:
            raise ValueError(f"weight_power must be > 0, got {weight_power}")
        self.factor = factor
        self.weighted = weighted
        self.max_shortlist = max_shortlist
        self.max_gap = max_gap
        self.pending = pending
        self.weight_power = weight_power

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray:
        """Each item's own informativeness, margin's: what Label Studio's task ordering and the
        post-deployment triage read. Batches are chosen by :meth:`select`."""
        return Margin().score(model, X, rng)

    def select(self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
               chunk_size: int, ids: np.ndarray | None, context: SelectContext) -> np.ndarray:
        if model is None:
            raise StrategyError("margin-coverage needs a fitted model")
        if not is_numeric(X):
            return select_top_k(Margin(), model, X, candidates, k, rng, chunk_size=chunk_size, ids=ids)
        top_rng, cover_rng = rng.spawn(2)
        size = min(self.factor * k, max(self.max_shortlist, k))
        short, w = top_k_scored(Margin(), model, X, candidates, size, top_rng, chunk_size=chunk_size, ids=ids)
        if self.max_gap is not None:  # only the uncertain part of the shortlist (never fewer than k)
            keep = max(k, int((w >= 1.0 - self.max_gap).sum()))
            short, w = short[:keep], w[:keep]
        w = np.asarray(w, dtype=np.float64) ** self.weight_power if self.weighted else None
        pending = np.asarray(context.pending, dtype=np.int64)
        centers = features(X, pending, "margin-coverage") if self.pending and pending.size else None
        return short[kmeans_pp(features(X, short, "margin-coverage"), k, cover_rng, centers=centers, first=0, trials=0,
                               weights=w)]

    def __repr__(self) -> str:
        return (f"MarginCoverage(factor={self.factor}, weighted={self.weighted}, max_shortlist={self.max_shortlist}, "
                f"max_gap={self.max_gap}, pending={self.pending}, weight_power={self.weight_power})")


class DiverseMiniBatch:
    """Diverse mini-batch active learning (F. Zhdanov, "Diverse mini-batch Active Learning",
    arXiv:1901.05954, 2019): the ``factor x k`` smallest-margin candidates, clustered into k
    clusters by k-means (scikit-learn's, weighted by the margin score when ``weighted``); the
    batch is the candidate nearest each centroid, so it is uncertain, spread out and typical of
    its cluster."""

    requires: tuple[str, ...] = ("predict_proba", "features")

    def __init__(self, factor: int = 10, weighted: bool = True):
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.factor = factor
        self.weighted = weighted

    def select(self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
               chunk_size: int, ids: np.ndarray | None, context: SelectContext) -> np.ndarray:
        import warnings

        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        if model is None:
            raise StrategyError("diverse-mini-batch needs a fitted model")
        top_rng, km_rng = rng.spawn(2)
        short = select_top_k(Margin(), model, X, candidates, self.factor * k, top_rng, chunk_size=chunk_size, ids=ids)
        if short.size <= k:
            return short
        F = features(X, short, "diverse-mini-batch")
        w = Margin().score(model, X[short], km_rng) if self.weighted else None
        with warnings.catch_warnings():  # tied or repeated points: fewer distinct clusters than k; the picks
            warnings.filterwarnings("ignore", "Number of distinct clusters", ConvergenceWarning)  # below still give k
            km = KMeans(n_clusters=k, n_init=1, random_state=int(km_rng.integers(2**31 - 1))).fit(F, sample_weight=w)
        d2 = pairwise_sq(km.cluster_centers_.astype(np.float32), F)
        picks: list[int] = []
        for j in np.argsort(np.bincount(km.labels_, minlength=k))[::-1]:  # largest clusters first
            order = np.argsort(d2[j], kind="stable")
            picks.append(int(next(i for i in order if i not in picks)))
        return short[np.array(picks, dtype=np.int64)]

    def __repr__(self) -> str:
        return f"DiverseMiniBatch(factor={self.factor}, weighted={self.weighted})"
