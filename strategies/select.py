"""The one selector every strategy shares: score the candidates chunk by chunk, keep a running
top-k, break ties with the seed, return pool indices (most informative first)."""

from __future__ import annotations

from typing import Any

import numpy as np

from orchestrator.errors import StrategyError
from orchestrator.types import Model, Strategy


def select_top_k(
    strategy: Strategy,
    model: Model | None,
    X: Any,
    candidates: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    chunk_size: int = 65536,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """Indices (into ``X``) of the ``k`` best-scoring ``candidates``, best first.

    Memory stays bounded by one chunk plus the running top-k. Ties are broken by random keys
    from a stream independent of the strategy's own, so the choice does not depend on
    ``chunk_size``. Asking for more than the candidates returns all of them, ranked.
    Non-finite scores raise :class:`StrategyError` naming the items (``ids``) at fault.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if k <= 0 or candidates.size == 0:
        return np.empty(0, dtype=np.int64)
    if chunk_size <= 0:
        raise StrategyError(f"chunk_size must be positive, got {chunk_size}")
    score_rng, tie_rng = rng.spawn(2)
    best_i = np.empty(0, dtype=np.int64)
    best_s = np.empty(0, dtype=np.float64)
    best_t = np.empty(0, dtype=np.float64)
    for start in range(0, candidates.size, chunk_size):
        idx = candidates[start : start + chunk_size]
        scores = np.asarray(strategy.score(model, X[idx], score_rng), dtype=np.float64).reshape(-1)
        if scores.shape[0] != idx.shape[0]:
            raise StrategyError(
                f"strategy {strategy!r} returned {scores.shape[0]} scores for {idx.shape[0]} items"
            )
        _check_finite(strategy, scores, idx, ids)
        ties = tie_rng.random(idx.shape[0])
        best_i, best_s, best_t = _keep_top(
            np.concatenate([best_i, idx]), np.concatenate([best_s, scores]), np.concatenate([best_t, ties]), k
        )
    order = np.lexsort((best_t, -best_s))
    return best_i[order]


def _keep_top(i: np.ndarray, s: np.ndarray, t: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    if s.size <= k:
        return i, s, t
    kth = np.partition(s, s.size - k)[s.size - k]
    keep = s >= kth
    i, s, t = i[keep], s[keep], t[keep]
    if s.size > k:  # ties at the boundary: the seed decides
        order = np.lexsort((t, -s))[:k]
        i, s, t = i[order], s[order], t[order]
    return i, s, t


def _check_finite(strategy: Strategy, scores: np.ndarray, idx: np.ndarray, ids: np.ndarray | None) -> None:
    bad = ~np.isfinite(scores)
    if bad.any():
        where = idx[bad][:5]
        names = [str(ids[j]) for j in where] if ids is not None else [str(j) for j in where]
        raise StrategyError(
            f"strategy {strategy!r} gave {int(bad.sum())} non-finite score(s) (NaN or inf), "
            f"e.g. for items {', '.join(names)}; non-finite scores are never selected silently. "
            "Check the model's predict_proba output for these items."
        )
