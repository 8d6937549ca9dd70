"""The one selector every strategy shares: score the candidates chunk by chunk, keep a running
top-k, break ties with the seed, return pool indices (most informative first)."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.types import Model, Strategy


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
    threads: int | None = None,
) -> np.ndarray:
    """Indices (into ``X``) of the ``k`` best-scoring ``candidates``, best first.

    Memory stays bounded by one chunk per thread plus the running top-k. Ties are broken by
    random keys from a stream independent of the strategy's own, so the choice does not depend
    on ``chunk_size`` or ``threads``. Asking for more than the candidates returns all of them,
    ranked. Non-finite scores raise :class:`StrategyError` naming the items (``ids``) at fault.

    Strategies whose scores draw no random numbers (``rng_free``) score chunks on ``threads``
    threads (None: one per available core, at most 8; 1: in this thread), each with one BLAS
    thread: many small products in parallel beat BLAS threads fighting over each one. A model
    that is not safe to call from several threads at once needs ``threads=1``.
    """
    return top_k_scored(strategy, model, X, candidates, k, rng, chunk_size=chunk_size, ids=ids, threads=threads)[0]


def top_k_scored(strategy: Strategy, model: Model | None, X: Any, candidates: np.ndarray, k: int,
                 rng: np.random.Generator, *, chunk_size: int = 65536, ids: np.ndarray | None = None,
                 threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`select_top_k`'s indices and their scores (float64), for strategies built on a
    shortlist that weigh its items by score without scoring them twice."""
    candidates = np.asarray(candidates, dtype=np.int64)
    if k <= 0 or candidates.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if chunk_size <= 0:
        raise StrategyError(f"chunk_size must be positive, got {chunk_size}")
    score_rng, tie_rng = rng.spawn(2)
    n_threads = scoring_threads(threads) if getattr(strategy, "rng_free", False) else 1
    chunk_size = _bounded_chunk(X, chunk_size, n_threads)
    best_i = np.empty(0, dtype=np.int64)
    best_s = np.empty(0, dtype=np.float64)
    best_t = np.empty(0, dtype=np.float64)
    for idx, scores in _scored_chunks(strategy, model, X, candidates, chunk_size, score_rng, n_threads):
        if scores.shape[0] != idx.shape[0]:
            raise StrategyError(
                f"strategy {strategy!r} returned {scores.shape[0]} scores for {idx.shape[0]} items"
            )
        _check_finite(strategy, scores, idx, ids)
        best_i, best_s, best_t = merge_top((best_i, best_s, best_t), idx, scores, tie_rng.random(idx.shape[0]), k)
    order = np.lexsort((best_t, -best_s))
    return best_i[order], best_s[order]


def _scored_chunks(strategy: Strategy, model: Model | None, X: Any, candidates: np.ndarray, chunk_size: int,
                   rng: np.random.Generator, n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(idx, scores)`` per chunk, in candidate order; at most ``n`` chunks in flight."""
    def score(start: int) -> tuple[np.ndarray, np.ndarray]:
        idx = candidates[start : start + chunk_size]
        return idx, np.asarray(strategy.score(model, _rows(X, idx), rng), dtype=np.float64).reshape(-1)

    starts = range(0, candidates.size, chunk_size)
    if n <= 1 or len(starts) <= 1:
        yield from map(score, starts)
        return
    from concurrent.futures import ThreadPoolExecutor

    from clicloop.strategies.linear import one_blas_thread

    with one_blas_thread(), ThreadPoolExecutor(n, thread_name_prefix="clicloop-score") as pool:
        pending: deque[Any] = deque()
        for start in starts:
            pending.append(pool.submit(score, start))
            if len(pending) >= n:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def scoring_threads(threads: int | None) -> int:
    """Threads for chunk scoring: ``threads``, or one per core this process may use (at most 8)."""
    if threads is not None:
        if threads < 1:
            raise StrategyError(f"threads must be at least 1, got {threads}")
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores))


CHUNK_BYTES = 32 << 20  # at most this much of the pool is copied at once (all threads together), however wide its rows


def _bounded_chunk(X: Any, chunk_size: int, threads: int = 1) -> int:
    """``chunk_size`` rows, fewer for wide numeric rows or many threads (the choice never depends on it)."""
    shape, dtype = getattr(X, "shape", None), getattr(X, "dtype", None)
    if shape is None or dtype is None or len(shape) != 2:
        return chunk_size
    return max(1, min(chunk_size, CHUNK_BYTES // max(threads, 1) // max(1, shape[1] * dtype.itemsize)))


def _rows(X: Any, idx: np.ndarray) -> Any:
    """The rows ``idx`` of ``X``: a view (no copy) when they are one contiguous run."""
    if idx.size and idx[-1] - idx[0] + 1 == idx.size and hasattr(X, "shape") and np.all(np.diff(idx) == 1):
        return X[int(idx[0]) : int(idx[-1]) + 1]
    return X[idx]


def merge_top(best: tuple[np.ndarray, np.ndarray, np.ndarray], idx: np.ndarray, scores: np.ndarray, ties: np.ndarray,
              k: int) -> tuple[np.ndarray, ...]:
    """The running top-``k`` ``best = (indices, scores, tie keys)`` merged with one chunk. Once
    ``k`` are kept, chunk items scoring below the worst kept one cannot enter and are dropped
    before the merge (most of a big pool: the merge then sorts a few items, not a chunk)."""
    bi, bs, bt = best
    if bs.size >= k:
        keep = scores >= bs.min()
        idx, scores, ties = idx[keep], scores[keep], ties[keep]
    return _keep_top(np.concatenate([bi, idx]), np.concatenate([bs, scores]), np.concatenate([bt, ties]), k)


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


def item_names(idx: np.ndarray, ids: np.ndarray | None, limit: int = 5) -> str:
    """The first ``limit`` pool items of ``idx``, by id when ``ids`` is given, for error messages."""
    return ", ".join(str(ids[j]) if ids is not None else str(j) for j in idx[:limit])


def _check_finite(strategy: Strategy, scores: np.ndarray, idx: np.ndarray, ids: np.ndarray | None) -> None:
    bad = ~np.isfinite(scores)
    if bad.any():
        raise StrategyError(
            f"strategy {strategy!r} gave {int(bad.sum())} non-finite score(s) (NaN or inf), "
            f"e.g. for items {item_names(idx[bad], ids)}; non-finite scores are never selected silently. "
            "Check the model's predict_proba output for these items."
        )


# -- batch-aware strategies and the one dispatcher the loop calls ---------------------------------


@dataclass(frozen=True)
class SelectContext:
    """What the loop knows beyond the model and the pool, for strategies that need it.

    ``labeled``: pool indices that already have a label (core-set, typicality, cold start).
    ``seconds``: a callable returning ``{item_id: observed active seconds}`` from the ledger
    (cost-aware selection); called only by strategies that need it.
    ``pending``: pool indices asked and in someone's hands, their labels still to come (continuous
    mode); not candidates. Coverage strategies cover around them (``margin-coverage``).
    """

    labeled: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    pending: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
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
    threads: int | None = None,
) -> np.ndarray:
    """Pick ``k`` of ``candidates`` with any strategy: batch-aware ones through their ``select``,
    pure score strategies through :func:`select_top_k` (on ``threads`` scoring threads). Returns
    distinct pool indices, best first; asking for more than the candidates returns all of them."""
    candidates = np.asarray(candidates, dtype=np.int64)
    if k <= 0 or candidates.size == 0:
        return np.empty(0, dtype=np.int64)
    if chunk_size <= 0:
        raise StrategyError(f"chunk_size must be positive, got {chunk_size}")
    if not callable(getattr(strategy, "select", None)):
        return select_top_k(strategy, model, X, candidates, k, rng, chunk_size=chunk_size, ids=ids, threads=threads)
    chosen = np.asarray(
        strategy.select(model, X, candidates, min(k, candidates.size), rng, chunk_size=chunk_size, ids=ids,
                        context=context or SelectContext()),
        dtype=np.int64,
    ).reshape(-1)
    if chosen.size > min(k, candidates.size) or np.unique(chosen).size != chosen.size or not np.isin(chosen, candidates).all():
        raise StrategyError(f"strategy {strategy!r} returned an invalid batch (duplicates, too many, or items not among the candidates)")
    return chosen
