"""Throughput of the ray engine on a local Ray (1 and 2 workers) against the local streaming
engine, on the same memory-mapped pool, checking that every engine picks the same top-k.

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 .venv/bin/python benchmarks/strategies_ray.py --rows 1000000 --dims 64

Ray's start is excluded (a cluster is long-lived); each figure is the median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dims", type=int, default=64)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    ns = p.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    from benchmarks.strategies_speed import make_pool
    from clicloop.strategies.pools import stream_top_k
    from clicloop.strategies.ray_engine import RayEngine
    from clicloop.strategies.scores import Margin

    X, model = make_pool(ns.rows, ns.dims, 10)
    path = Path(tempfile.mkdtemp(prefix="clicloop-ray-")) / "pool.npy"
    np.save(path, X)
    del X
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")  # 1 + 2 actors
    runs = {"local stream_top_k (1 process)": lambda: stream_top_k(Margin(), model, path, ns.k, np.random.default_rng(0))}
    for w in (1, 2):
        engine = RayEngine(num_workers=w, range_rows=131_072)
        engine.top_k(Margin(), model, path, ns.k, np.random.default_rng(0))  # warm-up: start the actors
        runs[f"ray engine, {w} worker(s)"] = lambda e=engine: e.top_k(Margin(), model, path, ns.k, np.random.default_rng(0))
    picks, times = {}, {name: [] for name in runs}
    for _ in range(ns.repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            picks[name] = fn()
            times[name].append(time.perf_counter() - t)
    ref = next(iter(picks.values()))
    print(f"\npool {ns.rows:,} x {ns.dims} float32 memory-mapped .npy, top-{ns.k} margin, median of {ns.repeats}\n")
    print("| engine | median s | rows/s | same top-k as local |")
    print("|---|---|---|---|")
    for name in runs:
        med = float(np.median(times[name]))
        print(f"| {name} | {med:.3f} | {ns.rows / med:,.0f} | {bool(np.array_equal(picks[name], ref))} |")
    ray.shutdown()


if __name__ == "__main__":
    main()
