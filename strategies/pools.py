"""Pools of any size: stream rows from memory-mapped ``.npy`` files or Parquet row groups in
chunks and keep a running top-k, so memory stays bounded by one chunk whatever the pool's size.

:func:`stream_top_k` over a pool with ``exclude`` (the labeled rows) picks exactly what
:func:`clicloop.strategies.select.select_top_k` picks over the complement as candidates, for the same
``rng``: scores and tie-breaking keys are drawn row after row in pool order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import DataError, StrategyError
from clicloop.orchestrator.types import Model, Strategy
from clicloop.strategies.select import _bounded_chunk, _check_finite, merge_top


def open_npy(path: str | Path) -> np.ndarray:
    """A read-only memory map of a 2-D ``.npy`` file (nothing is read until rows are used)."""
    X = np.load(path, mmap_mode="r")
    if X.ndim != 2:
        raise DataError(f"{path}: expected a 2-D array, got shape {X.shape}")
    return X


def iter_chunks(source: Any, chunk_size: int, columns: Sequence[str] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(first_row, rows)`` chunks of a 2-D array, a memory map, or a path to ``.npy`` /
    ``.parquet``. A Parquet pool is read batch by batch (never the whole file): its numeric
    ``columns`` (default: every column) become float32 features, or one fixed-size list column
    (an embedding) is unpacked."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix == ".npy":
            source = open_npy(path)
        elif path.suffix in (".parquet", ".pq"):
            yield from _parquet_chunks(path, chunk_size, columns)
            return
        else:
            raise DataError(f"{path}: streaming pools are .npy or .parquet files")
    chunk_size = _bounded_chunk(source, chunk_size)
    for start in range(0, source.shape[0], chunk_size):
        yield start, np.asarray(source[start : start + chunk_size])


def _parquet_chunks(path: Path, chunk_size: int, columns: Sequence[str] | None) -> Iterator[tuple[int, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    start = 0
    for batch in pf.iter_batches(batch_size=chunk_size, columns=list(columns) if columns else None):
        cols = batch.columns
        if len(cols) == 1 and pa.types.is_list(cols[0].type) or len(cols) == 1 and pa.types.is_fixed_size_list(cols[0].type):
            flat = cols[0].flatten().to_numpy(zero_copy_only=False)
            rows = flat.reshape(batch.num_rows, -1).astype(np.float32, copy=False)
        else:
            rows = np.column_stack([c.to_numpy(zero_copy_only=False) for c in cols]).astype(np.float32, copy=False)
        yield start, rows
        start += batch.num_rows


def stream_top_k(
    strategy: Strategy,
    model: Model | None,
    source: Any,
    k: int,
    rng: np.random.Generator,
    *,
    chunk_size: int = 65536,
    exclude: np.ndarray | None = None,
    columns: Sequence[str] | None = None,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """Row numbers of the ``k`` best-scoring rows of ``source`` not in ``exclude``, best first.

    For pure score strategies (batch strategies need the pool in memory). Memory: one chunk
    plus O(k)."""
    if callable(getattr(strategy, "select", None)):
        raise StrategyError(f"{strategy!r} selects whole batches; stream_top_k takes score strategies only")
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if chunk_size <= 0:
        raise StrategyError(f"chunk_size must be positive, got {chunk_size}")
    excluded = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None else np.empty(0, np.int64)
    score_rng, tie_rng = rng.spawn(2)
    best_i = np.empty(0, dtype=np.int64)
    best_s = np.empty(0, dtype=np.float64)
    best_t = np.empty(0, dtype=np.float64)
    for start, rows in iter_chunks(source, chunk_size, columns):
        idx = np.arange(start, start + rows.shape[0], dtype=np.int64)
        keep = ~np.isin(idx, excluded, assume_unique=True) if excluded.size else slice(None)
        idx, rows = idx[keep], rows[keep]
        if idx.size == 0:
            continue
        scores = np.asarray(strategy.score(model, rows, score_rng), dtype=np.float64).reshape(-1)
        if scores.shape[0] != idx.shape[0]:
            raise StrategyError(f"strategy {strategy!r} returned {scores.shape[0]} scores for {idx.shape[0]} items")
        _check_finite(strategy, scores, idx, ids)
        best_i, best_s, best_t = merge_top((best_i, best_s, best_t), idx, scores, tie_rng.random(idx.shape[0]), k)
    order = np.lexsort((best_t, -best_s))
    return best_i[order]
