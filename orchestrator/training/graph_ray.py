"""The approximate neighbour graph's searches on a Ray cluster: the driver trains and fills the
faiss IVF index (:mod:`clicloop.orchestrator.training.graph`), ships it once through the object
store, and the engine's workers search ranges of the pool in parallel. Each item's neighbours
come from the same index by the same exact distances, so the graph is the local one, row for row.
Ray is imported only here, through the engine (``loop.engine: {name: ray}``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _search(index_bytes: np.ndarray, X: np.ndarray, start: int, stop: int, k: int, nprobe: int) -> np.ndarray:
    """The ``k`` nearest items of rows ``[start, stop)`` of ``X`` in the serialised index."""
    import faiss

    index = faiss.deserialize_index(index_bytes)
    index.nprobe = nprobe
    return index.search(np.ascontiguousarray(X[start:stop]), k)[1]


def search_on_ray(engine: Any, index: Any, Xf: np.ndarray, k: int, nprobe: int, range_rows: int,
                  done: Any) -> list[tuple[int, np.ndarray]]:
    """``[(start, found rows)]`` for ranges of ``range_rows`` rows of ``Xf`` (float32), searched by
    ``engine.num_workers`` Ray tasks at a time (``engine``: a :class:`~clicloop.strategies.ray_engine.RayEngine`);
    ``done(n)`` is called as ranges finish."""
    import faiss

    ray = engine._ray()
    search = ray.remote(num_cpus=1)(_search)
    index_ref, X_ref = ray.put(faiss.serialize_index(index)), ray.put(Xf)
    starts = list(range(0, len(Xf), range_rows))
    pending = {search.remote(index_ref, X_ref, s, min(s + range_rows, len(Xf)), k, nprobe): s for s in starts}
    out = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        start = pending.pop(ready[0])
        found = ray.get(ready[0])
        out.append((start, found))
        done(len(found))
    return sorted(out, key=lambda part: part[0])
