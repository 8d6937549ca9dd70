"""The pool's k-nearest-neighbour graph for label spreading, built once per pool and kept on disk.

Small pools (at most :data:`EXACT_MAX` items) get the exact graph, as scikit-learn's
``NearestNeighbors`` gives it; larger ones an approximate graph from faiss's inverted-file index
(``IndexIVFFlat``: k-means cells, exact distances within the ``nprobe`` nearest cells; J.
Johnson, M. Douze, H. Jégou, "Billion-scale similarity search with GPUs", IEEE TBD 2019). It was
chosen over HNSW (faiss, hnswlib), usearch and pynndescent because it built the graph fastest at
the same recall on 100,000 x 384 vectors and is deterministic (seeded k-means, exact distances):
the same pool gives the same graph, so the same seed gives the same ledger
(``docs/benchmarks/log.md``, 2026-12-04, "Approximate neighbour graph").

Each graph is saved under ``cache_dir("graphs")`` with a key that hashes the pool's feature matrix
and the graph's parameters: a resumed loop, or a second loop on the same pool, loads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EXACT_MAX = 20_000  # pools up to this size: the exact graph (brute force costs n^2 distances)
CHUNK = 16_384  # pool rows added to / searched in the index at once
CELLS_PER_SQRT = 2  # k-means cells per sqrt(items): a search scans 8 cells of n / (2 sqrt n) items, half of
# sqrt(n) cells' cost, at recall@10 0.996 instead of 1.000 on the synthetic 100,000 x 384 pool (log, 2026-12-05)
VERSION = 1  # bump when the graph a given key names changes


def graph_params(n_items: int, neighbors: int, method: str = "auto") -> dict[str, Any]:
    """The parameters that decide the graph of an ``n_items`` pool: ``method`` ``auto`` is
    ``exact`` up to :data:`EXACT_MAX` items and ``approximate`` above."""
    k = max(1, min(neighbors, n_items - 1))
    if method == "auto":
        method = "exact" if n_items <= EXACT_MAX else "approximate"
    if method == "exact":
        return {"method": "exact", "k": k, "version": VERSION}
    nlist = max(1, int(round(CELLS_PER_SQRT * np.sqrt(n_items))))
    return {"method": "faiss-ivf", "k": k, "nlist": nlist, "nprobe": min(nlist, 8), "train": min(n_items, 64 * nlist),
            "version": VERSION}


def graph_key(X: np.ndarray, params: dict[str, Any]) -> str:
    """A hash of the feature matrix (shape, dtype, bytes) and the graph's parameters."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    h.update(f"{X.shape}{X.dtype.str}".encode())
    flat = np.ascontiguousarray(X).reshape(-1)
    step = max(1, (64 << 20) // max(1, flat.itemsize))  # 64 MB at a time
    for start in range(0, flat.size, step):
        h.update(memoryview(flat[start:start + step]).cast("B"))
    return h.hexdigest()[:32]


def neighbour_graph(X: Any, neighbors: int, method: str = "auto", cache: bool = True, engine: Any = None,
                    key: str | None = None) -> Any:
    """The connectivity graph (scipy CSR, ``n x n``, each row its item and its ``k - 1`` nearest
    others, like ``kneighbors_graph(X, k)``), loaded from the cache when this pool and these
    parameters built it before. With ``engine`` (the Ray engine), an approximate graph's searches
    run on its cluster (the same graph). ``key``: :func:`graph_key`, when the caller has it."""
    from scipy import sparse

    X = np.asarray(X)
    params = graph_params(len(X), neighbors, method)
    path = None
    if cache:
        from clicloop.orchestrator.cachedir import cache_dir

        path = cache_dir("graphs") / f"{key or graph_key(X, params)}.npy"
        if path.exists():
            log.info("neighbour graph: loaded %s (%s)", path, params["method"])
            return _csr(np.load(path), len(X), sparse)
    start = time.perf_counter()
    rows = _exact(X, params["k"]) if params["method"] == "exact" else _approximate(X, params, engine)
    log.info("neighbour graph: %d items, %d neighbours, %s, built in %.1f s", len(X), params["k"], params["method"],
             time.perf_counter() - start)
    if path is not None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, rows)
        os.replace(tmp, path)  # atomic: a second loop never reads half a file
    return _csr(rows, len(X), sparse)


def _csr(rows: np.ndarray, n: int, sparse: Any) -> Any:
    k = rows.shape[1]
    indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
    return sparse.csr_matrix((np.ones(n * k), rows.reshape(-1).astype(np.int64), indptr), shape=(n, n))


def _exact(X: np.ndarray, k: int) -> np.ndarray:
    """Each item and its ``k - 1`` nearest others by Euclidean distance (scikit-learn, brute force)."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k).fit(X).kneighbors(X, k, return_distance=False).astype(np.int32)


def _approximate(X: np.ndarray, params: dict[str, Any], engine: Any = None) -> np.ndarray:
    """Each item and its ``k - 1`` nearest others by Euclidean distance, from a faiss IVF index
    built and searched :data:`CHUNK` rows at a time (float32, one copy of the pool in the index),
    on every core."""
    import faiss

    n, d, k = len(X), X.shape[1], params["k"]
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # a one-off per pool: every core, whatever the round's limit
    try:
        return _ivf_rows(faiss, X, params, n, d, k, engine)
    finally:
        faiss.omp_set_num_threads(threads)
        release_freed_memory()


def release_freed_memory() -> None:
    """Hand memory freed by the index back to the system: glibc keeps freed heap blocks (here the
    index's cells, the pool's float32 size again), which stayed resident through the rounds after
    (200,000 x 384: 715 MB resident after the graph, 378 MB after this; log, 2026-12-05). A no-op
    where the C library has no ``malloc_trim`` (macOS, Windows, musl)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:  # a C library that cannot be loaded: nothing to trim
        return
    if trim is not None:
        trim(0)


def _ivf_rows(faiss: Any, X: np.ndarray, params: dict[str, Any], n: int, d: int, k: int, engine: Any) -> np.ndarray:
    from clicloop.orchestrator.progress import chunk_progress

    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, params["nlist"], faiss.METRIC_L2)
    index.cp.seed = 0
    index.cp.min_points_per_centroid = 1  # a small pool trains on all it has, without a warning
    sample = np.sort(np.random.default_rng(0).choice(n, params["train"], replace=False))
    index.train(np.ascontiguousarray(X[sample], dtype=np.float32))
    index.nprobe = nprobe = params["nprobe"]
    rows = np.empty((n, k), dtype=np.int32)
    near, dist = np.empty((n, nprobe), dtype=np.int64), np.empty((n, nprobe), dtype=np.float32)
    with chunk_progress(2 * n, f"neighbour graph of {n:,} items (two passes: cells, then neighbours)") as advance:
        for start in range(0, n, CHUNK):  # each item's nprobe nearest cells, once: its own for the add, all for the search
            dist[start:start + CHUNK], near[start:start + CHUNK] = quantizer.search(_chunk(X, start), nprobe)
        _reserve(faiss, index, np.bincount(near[:, 0], minlength=params["nlist"]))
        for start in range(0, n, CHUNK):
            part, cells = _chunk(X, start), np.ascontiguousarray(near[start:start + CHUNK, 0])
            index.add_core(len(part), faiss.swig_ptr(part), None, faiss.swig_ptr(cells))
            advance(len(part))
        if engine is not None:
            from clicloop.orchestrator.training.graph_ray import search_on_ray

            Xf = np.asarray(X, dtype=np.float32)
            for start, found in search_on_ray(engine, index, Xf, k, nprobe, CHUNK, advance):
                rows[start:start + len(found)] = _self_first(found, start)
            return rows
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            found = index.search_preassigned(_chunk(X, start), k, near[start:stop], dist[start:stop])[1]
            rows[start:stop] = _self_first(found, start)
            advance(len(found))
    return rows


def _chunk(X: np.ndarray, start: int) -> np.ndarray:
    """Rows ``[start, start + CHUNK)`` of the pool as contiguous float32 (a view where they already are)."""
    return np.ascontiguousarray(X[start:start + CHUNK], dtype=np.float32)


def _reserve(faiss: Any, index: Any, counts: np.ndarray) -> None:
    """Give each of the index's cells the room its items need before they are added: filled item by
    item, a cell's storage would double as it grows (up to twice the pool's float32 size at once)."""
    lists = faiss.downcast_InvertedLists(index.invlists)
    for cell in np.flatnonzero(counts).tolist():
        lists.resize(cell, int(counts[cell]))  # a vector resized up, then down, keeps its capacity
        lists.resize(cell, 0)


def _self_first(found: np.ndarray, start: int) -> np.ndarray:
    """Rows of found neighbours with the item itself first (as exact search gives it: distance 0),
    even where duplicates tie with it or the index missed it; -1 (too few found) becomes the item."""
    own = np.arange(start, start + len(found))[:, None]
    found = np.where(found < 0, own, found)
    others = np.where(found == own, -1, found)
    order = np.argsort(others == -1, axis=1, kind="stable")  # the found others, in distance order, first
    others = np.take_along_axis(others, order, axis=1)[:, :found.shape[1] - 1]
    others = np.where(others == -1, own, others)
    return np.concatenate([own, others], axis=1)
