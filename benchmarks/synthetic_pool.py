"""A synthetic numeric pool for scale benchmarks: clustered Gaussians, ``classes`` classes in
``dim`` dimensions, float32, rows scaled to unit length like sentence embeddings.

    .venv/bin/python benchmarks/synthetic_pool.py --rows 100000 --dim 384 --out /tmp/pool100k

writes ``pool.npz`` (``X``, ``label`` empty, ``truth``), ``eval.npz`` and ``meta.json`` into
``--out``: the layout ``loop_labels.py`` and ``loop_round_time.py`` read. Generated in chunks of
``chunk`` rows, so a million rows need only the pool's own memory (1.5 GB at 384 dimensions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def clustered(rows: int, dim: int = 384, classes: int = 100, spread: float = 1.6, seed: int = 0,
              chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """``(X, truth)``: ``rows`` unit vectors around ``classes`` random centres (noise ``spread``
    times the centres' scale, so neighbouring classes overlap a little)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    truth = rng.integers(0, classes, size=rows)
    X = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, chunk):
        part = truth[start:start + chunk]
        block = centres[part] + spread * rng.standard_normal((part.size, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        X[start:start + chunk] = block
    return X, np.array([f"c{t:03d}" for t in truth])


def write(out: Path, rows: int, dim: int, classes: int, eval_rows: int, seed: int) -> None:
    """The pool and an evaluation set (drawn from the same centres) as npz files in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    X, truth = clustered(rows + eval_rows, dim, classes, seed=seed)
    np.savez(out / "pool.npz", X=X[:rows], label=np.array([""] * rows), truth=truth[:rows])
    np.savez(out / "eval.npz", X=X[rows:], label=truth[rows:])
    (out / "meta.json").write_text(json.dumps({"name": f"synthetic-{rows}x{dim}", "classes": classes, "seed": seed}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--eval-rows", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    ns = p.parse_args()
    write(ns.out, ns.rows, ns.dim, ns.classes, ns.eval_rows, ns.seed)


if __name__ == "__main__":
    main()
