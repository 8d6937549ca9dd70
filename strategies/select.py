"""The one selector every strategy shares: score the candidates chunk by chunk, keep a running
top-k, break ties with the seed, return pool indices (most informative first)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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
    chunk_size = _bounded_chunk(X, chunk_size)
    best_i = np.empty(0, dtype=np.int64)
    best_s = np.empty(0, dtype=np.float64)
    best_t = np.empty(0, dtype=np.float64)
    for start in range(0, candidates.size, chunk_size):
        idx = candidates[start : start + chunk_size]
        scores = np.asarray(strategy.score(model, _rows(X, idx), score_rng), dtype=np.float64).reshape(-1)
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


CHUNK_BYTES = 32 << 20  # at most this much of the pool is copied at once, however wide its rows


def _bounded_chunk(X: Any, chunk_size: int) -> int:
    """``chunk_size`` rows, fewer for wide numeric rows (the choice never depends on it)."""
    shape, dtype = getattr(X, "shape", None), getattr(X, "dtype", None)
    if shape is None or dtype is None or len(shape) != 2:
        return chunk_size
    return max(1, min(chunk_size, CHUNK_BYTES // max(1, shape[1] * dtype.itemsize)))


def _rows(X: Any, idx: np.ndarray) -> Any:
    """The rows ``idx`` of ``X``: a view (no copy) when they are one contiguous run."""
    if idx.size and idx[-1] - idx[0] + 1 == idx.size and hasattr(X, "shape") and np.all(np.diff(idx) == 1):
        return X[int(idx[0]) : int(idx[-1]) + 1]
    return X[idx]


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


# -- batch-aware strategies and the one dispatcher the loop calls ---------------------------------


@dataclass(frozen=True)
class SelectContext:
    """What the loop knows beyond the model and the pool, for strategies that need it.

    ``labeled``: pool indices that already have a label (core-set, typicality, cold start).
    ``seconds``: a callable returning ``{item_id: observed active seconds}`` from the ledger
    (cost-aware selection); called only by strategies that need it.
    """

    labeled: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    seconds: Callable[[], Mapping[str, float]] | None = None


@runtime_checkable
class BatchStrategy(Protocol):
    """A strategy that picks a whole batch at once (diversity, clustering, cost, adapters).

    ``select`` returns at most ``k`` distinct indices into ``X`` taken from ``candidates``, best
    first; randomness only from ``rng``; memory bounded by ``chunk_size`` rows plus O(k) state
    where the method allows it.
    """

    requires: tuple[str, ...]

    def select(
        self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
        chunk_size: int, ids: np.ndarray | None, context: SelectContext,
    ) -> np.ndarray: ...


def select(
    strategy: Any,
    model: Model | None,
    X: Any,
    candidates: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    chunk_size: int = 65536,
    ids: np.ndarray | None = None,
    context: SelectContext | None = None,
) -> np.ndarray:
    """Pick ``k`` of ``candidates`` with any strategy: batch-aware ones through their ``select``,
    pure score strategies through :func:`select_top_k`. Returns distinct pool indices, best first;
    asking for more than the candidates returns all of them."""
    candidates = np.asarray(candidates, dtype=np.int64)
    if k <= 0 or candidates.size == 0:
        return np.empty(0, dtype=np.int64)
    if chunk_size <= 0:
        raise StrategyError(f"chunk_size must be positive, got {chunk_size}")
    if not callable(getattr(strategy, "select", None)):
        return select_top_k(strategy, model, X, candidates, k, rng, chunk_size=chunk_size, ids=ids)
    chosen = np.asarray(
        strategy.select(model, X, candidates, min(k, candidates.size), rng, chunk_size=chunk_size, ids=ids,
                        context=context or SelectContext()),
        dtype=np.int64,
    ).reshape(-1)
    if chosen.size > min(k, candidates.size) or np.unique(chosen).size != chosen.size or not np.isin(chosen, candidates).all():
        raise StrategyError(f"strategy {strategy!r} returned an invalid batch (duplicates, too many, or items not among the candidates)")
    return chosen
