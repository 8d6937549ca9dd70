"""Seconds and peak extra memory of the pairwise squared distances that ``margin-coverage``'s
cover computes once per round over its shortlist (``strategies/diversity.py``'s ``pairwise_sq``,
in place since 2026-12-05), beside the same expression written out (three temporaries of the
result's size, as before). A function-level figure, not a loop's; the same values bit for bit.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pairwise_memory.py --rows 4096 --dims 384 --repeats 5

Medians over ``--repeats`` interleaved rounds; memory is the peak of numpy allocations during one
call (``tracemalloc``), the result included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def written_out(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.maximum(np.einsum("ij,ij->i", A, A)[:, None] - 2.0 * (A @ B.T) + np.einsum("ij,ij->i", B, B)[None, :], 0.0)


def main() -> None:
    from clicloop.strategies.diversity import pairwise_sq

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=4096, help="shortlist size (margin-coverage's max_shortlist: 4096)")
    p.add_argument("--dims", type=int, default=384)
    p.add_argument("--repeats", type=int, default=5)
    ns = p.parse_args()
    F = np.random.default_rng(0).normal(size=(ns.rows, ns.dims)).astype(np.float32)
    methods = {"pairwise_sq (product)": pairwise_sq, "written out (before)": written_out}
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    peaks: dict[str, list[int]] = {name: [] for name in methods}
    for _ in range(ns.repeats):
        for name, f in methods.items():
            tracemalloc.start()
            started = time.perf_counter()
            out = f(F, F)
            seconds[name].append(time.perf_counter() - started)
            peaks[name].append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            del out
    print(f"{ns.rows} x {ns.dims} float32, {ns.repeats} interleaved repeats")
    print("| method | median ms | peak MiB |\n|---|---|---|")
    for name in methods:
        print(f"| {name} | {statistics.median(seconds[name]) * 1000:.0f} | {max(peaks[name]) / 2**20:.0f} |")


if __name__ == "__main__":
    main()
