"""Query time and peak extra memory of a top-k margin query, side by side in one run: a bare
``predict_proba``, clicloop (fused linear path; generic chunked path; streamed from a
memory-mapped .npy), modAL's ``margin_sampling`` and scikit-activeml's ``UncertaintySampling``.

    .venv/bin/python benchmarks/strategies_speed.py --rows 1000000 --dims 64 --repeats 5
    .venv/bin/python benchmarks/strategies_speed.py --rows 200000 --dims 768 --repeats 5

Medians over ``--repeats`` interleaved rounds (every method once per round, so machine noise
hits all of them alike); memory is the peak of numpy/Python allocations above the pool
(``tracemalloc``) during one call. scikit-activeml is optional (``--no-skactiveml``).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_pool(rows: int, dims: int, classes: int, seed: int = 0) -> tuple[np.ndarray, Any]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, dims)).astype(np.float32)
    X = np.empty((rows, dims), dtype=np.float32)
    for s in range(0, rows, 1 << 16):  # generated in chunks: no float64 copy of the pool
        n = min(1 << 16, rows - s)
        X[s : s + n] = centers[rng.integers(0, classes, n)] * 0.5 + rng.standard_normal((n, dims), dtype=np.float32)
    y = ((X[:2000] @ centers.T).argmax(axis=1))
    model = LogisticRegression(max_iter=300).fit(X[:2000], y)
    return X, model


def measure(fn: Callable[[], Any]) -> tuple[float, float]:
    gc.collect()
    tracemalloc.start()
    t = time.perf_counter()
    fn()
    secs = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return secs, peak / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dims", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--chunk-size", type=int, default=65536)
    p.add_argument("--no-skactiveml", action="store_true")
    p.add_argument("--blas-threads", type=int, default=None, help="limit BLAS threads for every method alike")
    p.add_argument("--workdir", default=None, help="where the memory-mapped copy of the pool goes (default: a temp dir)")
    ns = p.parse_args()

    from clicloop.strategies.pools import stream_top_k
    from clicloop.strategies.scores import Margin
    from clicloop.strategies.coverage import MarginCoverage
    from clicloop.strategies.select import select, select_top_k

    X, model = make_pool(ns.rows, ns.dims, ns.classes)
    workdir = Path(ns.workdir or tempfile.mkdtemp(prefix="clicloop-bench-"))
    np.save(workdir / "pool.npy", X)
    cand = np.arange(ns.rows)
    k = ns.k

    class Opaque:  # the same model, hidden from the fused path: the generic "any model" route
        classes_ = model.classes_

        def predict_proba(self, Z: Any) -> np.ndarray:
            return model.predict_proba(Z)

    import modAL.uncertainty  # imported before timing: its 4 s import is not a query cost

    methods: dict[str, Callable[[], Any]] = {
        "bare predict_proba (sklearn)": lambda: model.predict_proba(X),
        "clicloop margin, fused linear path": lambda: select_top_k(Margin(), model, X, cand, k, np.random.default_rng(0), chunk_size=ns.chunk_size),
        "clicloop margin, generic path (any model)": lambda: select_top_k(Margin(), Opaque(), X, cand, k, np.random.default_rng(0), chunk_size=ns.chunk_size),
        "clicloop margin, generic path, threads=1": lambda: select_top_k(Margin(), Opaque(), X, cand, k, np.random.default_rng(0), chunk_size=ns.chunk_size, threads=1),
        "clicloop margin, fused linear path, threads=1": lambda: select_top_k(Margin(), model, X, cand, k, np.random.default_rng(0), chunk_size=ns.chunk_size, threads=1),
        "clicloop margin-coverage (the default), fused linear path": lambda: select(MarginCoverage(), model, X, cand, k, np.random.default_rng(0), chunk_size=ns.chunk_size),
        "clicloop margin, streamed from .npy memmap": lambda: stream_top_k(Margin(), model, workdir / "pool.npy", k, np.random.default_rng(0), chunk_size=ns.chunk_size),
        "modAL margin_sampling": lambda: modAL.uncertainty.margin_sampling(model, X, n_instances=k),
    }
    if not ns.no_skactiveml:
        from skactiveml.classifier import SklearnClassifier
        from skactiveml.pool import UncertaintySampling
        from skactiveml.utils import MISSING_LABEL

        clf = SklearnClassifier(model, classes=model.classes_, missing_label=MISSING_LABEL)
        clf.estimator_ = model
        clf.is_fitted_ = True  # reuse the fitted model: measure the query, not a refit
        clf.fit(X[:2000], model.predict(X[:2000]))
        y_missing = np.full(ns.rows, MISSING_LABEL)
        qs = UncertaintySampling(method="margin_sampling", random_state=0)
        methods["scikit-activeml UncertaintySampling(margin)"] = lambda: qs.query(X, y_missing, clf, fit_clf=False, batch_size=k)

    # the memory-bandwidth floor: one streaming pass over the pool
    methods["(floor) one pass over the pool: X.sum(axis=0)"] = lambda: X.sum(axis=0)

    if ns.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(ns.blas_threads)
    times: dict[str, list[float]] = {m: [] for m in methods}
    mems: dict[str, float] = {}
    for r in range(ns.repeats):
        for name, fn in methods.items():
            secs, mb = measure(fn) if r == 0 else (None, None)
            if r == 0:
                mems[name] = mb
                times[name].append(secs)
                continue
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    base = float(np.median(times["bare predict_proba (sklearn)"][1:] or times["bare predict_proba (sklearn)"]))
    print(f"\npool {ns.rows:,} x {ns.dims} float32 ({X.nbytes / 2**20:.0f} MB), {ns.classes}-class LogisticRegression, "
          f"top-{k} margin query, median of {max(ns.repeats - 1, 1)} timed rounds (first round measures memory), "
          f"BLAS threads: {ns.blas_threads or 'library default'}\n")
    print("| method | median s | x bare predict_proba | peak extra MB |")
    print("|---|---|---|---|")
    for name in methods:
        ts = times[name][1:] or times[name]
        med = float(np.median(ts))
        print(f"| {name} | {med:.3f} | {med / base:.2f} | {mems[name]:.0f} |")


if __name__ == "__main__":
    main()
