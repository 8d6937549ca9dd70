"""The fused linear path's kernel, side by side on one thread: class-major (``W.T @ X.T``, what
``clicloop.strategies.linear`` did first) against row-major (``X @ W`` then a transpose of the small
result), both followed by the margin reductions with the stable softmax's shift always applied;
and what ``clicloop.strategies.linear`` does now: row-major, the transpose and the bias in one pass, and the
shift skipped on blocks whose top logits cannot overflow or underflow ``exp``.

    .venv/bin/python benchmarks/linear_kernel.py --repeats 7

Medians over interleaved repeats (machine noise hits both alike); blocks sized as
``select_top_k`` sizes chunks for two scoring threads (32 MB of pool rows in all).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _margin_shifted(Z: np.ndarray) -> np.ndarray:
    """The margin reductions as ``clicloop.strategies.linear`` had them before it skipped the shift: the
    top logit is always subtracted (one more pass over the block), a temporary per class."""
    first = Z[0].copy()
    second = np.full_like(first, -np.inf)
    for z in Z[1:]:
        np.maximum(second, np.minimum(first, z), out=second)
        np.maximum(first, z, out=first)
    Z -= first
    np.exp(Z, out=Z)
    return 1.0 - (1.0 - np.exp(second - first)) / Z.sum(axis=0)


def kernels(X: np.ndarray, W: np.ndarray, block: int) -> dict[str, Callable[[], None]]:
    from clicloop.strategies.linear import _margin

    WT, bT = np.ascontiguousarray(W.T), np.zeros((W.shape[1], 1), np.float32)
    rows = np.empty((block, W.shape[1]), np.float32)
    logits = np.empty((W.shape[1], block), np.float32)

    def class_major() -> None:
        for s in range(0, X.shape[0], block):
            Z = WT @ X[s : s + block].T
            Z += bT
            _margin_shifted(Z)

    def row_major() -> None:
        for s in range(0, X.shape[0], block):
            b = X[s : s + block]
            Z = np.matmul(b, W, out=rows[: b.shape[0]]).T.copy()
            Z += bT
            _margin_shifted(Z)

    def row_major_now() -> None:  # clicloop.strategies.linear.fused_scores's loop
        for s in range(0, X.shape[0], block):
            b = X[s : s + block]
            Z = logits[:, : b.shape[0]]
            np.add(np.matmul(b, W, out=rows[: b.shape[0]]).T, bT, out=Z)
            _margin(Z)

    return {"class-major W.T @ X.T": class_major, "row-major X @ W, transposed": row_major,
            "row-major, transpose + bias in one pass, shift skipped where safe (now)": row_major_now}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=["1000000x64", "200000x768"], help="ROWSxDIMS pools")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=7)
    ns = p.parse_args()
    from clicloop.strategies.linear import BLOCK, one_blas_thread
    from clicloop.strategies.select import CHUNK_BYTES

    rng = np.random.default_rng(0)
    print("| pool | block rows | kernel | median ms | x class-major |")
    print("|---|---|---|---|---|")
    for shape in ns.shapes:
        n, d = (int(v) for v in shape.split("x"))
        X = rng.standard_normal((n, d), dtype=np.float32)
        W = rng.standard_normal((d, ns.classes)).astype(np.float32)
        block = max(1, min(BLOCK, CHUNK_BYTES // 2 // (d * 4)))
        fns = kernels(X, W, block)
        times: dict[str, list[float]] = {k: [] for k in fns}
        with one_blas_thread():
            for _ in range(ns.repeats):
                for name, fn in fns.items():
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
        base = float(np.median(times["class-major W.T @ X.T"]))
        for name, ts in times.items():
            med = float(np.median(ts))
            print(f"| {n:,} x {d} | {block:,} | {name} | {med * 1000:.0f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
