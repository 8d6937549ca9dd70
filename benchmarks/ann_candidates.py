"""Recall@k and build time of the approximate nearest-neighbour libraries that could give the
pseudo-labels their k-nearest-neighbour graph of the whole pool (every item's k neighbours, so
build plus one query per item), on the synthetic pool of ``synthetic_pool.py``.

    nice -n 10 .venv/bin/python benchmarks/ann_candidates.py --rows 100000 --dim 384 --threads 2
    nice -n 10 .venv/bin/python benchmarks/ann_candidates.py --npy ../shared/data/clinc150/clinc150.minilm.npy

Recall@k: the share of each sampled item's exact k nearest neighbours (cosine, self excluded,
exact by numpy on ``--sample`` items) that the library's graph holds. Time: wall seconds for the
whole graph (index build and all-item queries), ``--threads`` threads. Not the product: the
libraries called directly, with the parameters printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.synthetic_pool import clustered  # noqa: E402


def exact(X: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The exact k nearest neighbours (inner product on unit rows) of ``rows``, self excluded."""
    sims = X[rows] @ X.T
    sims[np.arange(rows.size), rows] = -np.inf
    return np.argsort(-sims, axis=1)[:, :k]


def faiss_ivf(X: np.ndarray, k: int, threads: int, nprobe: int = 8, per_sqrt: float = 4.0) -> np.ndarray:
    import faiss

    faiss.omp_set_num_threads(threads)
    nlist = int(per_sqrt * np.sqrt(len(X)))
    quant = faiss.IndexFlatIP(X.shape[1])
    index = faiss.IndexIVFFlat(quant, X.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 0
    index.train(X[np.random.default_rng(0).choice(len(X), min(len(X), 64 * nlist), replace=False)])
    index.add(X)
    index.nprobe = nprobe
    return index.search(X, k + 1)[1]


def graph_py(X: np.ndarray, k: int) -> np.ndarray:
    from clicloop.orchestrator.training.graph import neighbour_graph

    return neighbour_graph(X, k + 1, "approximate", cache=False).indices.reshape(len(X), k + 1)


def faiss_hnsw(X: np.ndarray, k: int, threads: int, m: int = 16) -> np.ndarray:
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(X.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(X)
    index.hnsw.efSearch = 48
    return index.search(X, k + 1)[1]


def hnsw(X: np.ndarray, k: int, threads: int, m: int = 16) -> np.ndarray:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=X.shape[1])
    index.init_index(max_elements=len(X), ef_construction=80, M=m, random_seed=0)
    index.set_num_threads(threads)
    index.add_items(X, np.arange(len(X)))
    index.set_ef(48)
    return index.knn_query(X, k=k + 1)[0].astype(np.int64)


def usearch(X: np.ndarray, k: int, threads: int) -> np.ndarray:
    from usearch.index import Index

    index = Index(ndim=X.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=80, expansion_search=48)
    index.add(np.arange(len(X)), X, threads=threads)
    return index.search(X, k + 1, threads=threads).keys.astype(np.int64)


def nndescent(X: np.ndarray, k: int, threads: int) -> np.ndarray:
    import numba
    import pynndescent

    numba.set_num_threads(threads)
    index = pynndescent.NNDescent(X, n_neighbors=k + 1, metric="dot", random_state=None, n_jobs=threads,
                                  low_memory=True, compressed=True)
    return index.neighbor_graph[0]


CANDIDATES: dict[str, Callable[..., np.ndarray]] = {
    "faiss IVFFlat (nlist 4*sqrt(n), nprobe 8)": faiss_ivf,
    "faiss IVFFlat (nlist sqrt(n), nprobe 8)": lambda X, k, t: faiss_ivf(X, k, t, 8, 1.0),
    "faiss IVFFlat (nlist sqrt(n), nprobe 16)": lambda X, k, t: faiss_ivf(X, k, t, 16, 1.0),
    "clicloop graph.py (faiss IVFFlat, L2, chunked)": lambda X, k, t: graph_py(X, k),
    "faiss HNSWFlat (M 16, efC 80, efS 48)": faiss_hnsw,
    "hnswlib (M 16, efC 80, ef 48)": hnsw,
    "usearch (connectivity 16, expansion 80/48)": usearch,
    "pynndescent (k+1 neighbours, dot)": nndescent,
}


def recall(graph: np.ndarray, rows: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = 0
    for r, want in zip(rows, truth):
        got = [j for j in graph[r] if j != r][:k]
        hits += len(set(got) & set(want.tolist()))
    return hits / (rows.size * k)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sample", type=int, default=1000)
    p.add_argument("--only", nargs="*", default=None, help="substrings of the candidates to run")
    p.add_argument("--npy", type=Path, default=None, help="real vectors instead (e.g. CLINC150's MiniLM embeddings)")
    ns = p.parse_args()
    if ns.npy is not None:
        X = np.load(ns.npy).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        ns.rows, ns.dim = X.shape
    else:
        X, _ = clustered(ns.rows, ns.dim)
    rows = np.random.default_rng(1).choice(ns.rows, ns.sample, replace=False)
    truth = exact(X, rows, ns.k)
    print(f"{ns.rows:,} x {ns.dim} float32, k={ns.k}, {ns.threads} threads, recall on {ns.sample} items")
    print("| library | graph build s | recall@k |\n|---|---|---|")
    for name, build in CANDIDATES.items():
        if ns.only and not any(o in name for o in ns.only):
            continue
        start = time.perf_counter()
        graph: Any = build(X, ns.k, ns.threads)
        secs = time.perf_counter() - start
        print(f"| {name} | {secs:.1f} | {recall(graph, rows, truth, ns.k):.3f} |", flush=True)


if __name__ == "__main__":
    main()
