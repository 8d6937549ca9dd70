"""The ``ray`` engine: score a pool on a Ray cluster with long-lived actors (each query ships the model
once through the object store), merge each range's top-k in the driver (never a global sort), and
pick exactly what the local engine picks.

Exactness: the local engine draws one score key (random strategy) and one tie key per candidate,
row after row, from two PCG64 streams; each range here starts its streams at the same position
with ``advance``, so ``RayEngine().top_k(...) == stream_top_k(...)`` for every built-in score strategy.

The pool is a path to a ``.npy`` file every node can read (shared storage), or an array
that is put in Ray's object store. Ray (P. Moritz et al., "Ray: A Distributed Framework for
Emerging AI Applications", OSDI 2018) is imported only here, when the engine runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.types import Model, Strategy
from clicloop.strategies.select import _keep_top, merge_top


def _range_top_k(strategy: Strategy, model: Model | None, source: Any, start: int, stop: int, excluded: np.ndarray,
                 position: int, seqs: tuple[Any, Any], k: int, chunk_size: int) -> tuple[np.ndarray, ...]:
    """Top-k (index, score, tie key) of rows [start, stop) not excluded; ``position`` is the
    number of candidates before ``start`` (where the random streams resume)."""
    if isinstance(source, (str, Path)):
        source = np.load(source, mmap_mode="r")
    gens = []
    for seq in seqs:
        bitgen = np.random.PCG64(seq)
        bitgen.advance(position)
        gens.append(np.random.Generator(bitgen))
    score_rng, tie_rng = gens
    bi, bs, bt = np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64)
    for s in range(start, stop, chunk_size):
        idx = np.arange(s, min(s + chunk_size, stop), dtype=np.int64)
        rows = np.asarray(source[idx[0] : idx[-1] + 1])
        if excluded.size:
            keep = ~np.isin(idx, excluded, assume_unique=True)
            idx, rows = idx[keep], rows[keep]
        if idx.size == 0:
            continue
        scores = np.asarray(strategy.score(model, rows, score_rng), dtype=np.float64).reshape(-1)
        if not np.isfinite(scores).all():
            bad = idx[~np.isfinite(scores)][:5]
            raise StrategyError(f"strategy {strategy!r} gave non-finite scores, e.g. for rows {bad.tolist()}")
        bi, bs, bt = merge_top((bi, bs, bt), idx, scores, tie_rng.random(idx.size), k)
    return bi, bs, bt


class RayEngine:
    """Top-k over a pool on Ray: ``address`` (None starts a local Ray with ``num_workers`` CPUs),
    ``num_workers`` actors, ranges of ``range_rows`` rows handed out round-robin."""

    def __init__(self, address: str | None = None, num_workers: int = 2, range_rows: int = 262_144,
                 init_kwargs: dict[str, Any] | None = None):
        self.address = address
        self.num_workers = num_workers
        self.range_rows = range_rows
        self.init_kwargs = init_kwargs

    def check(self) -> None:
        """Connect now, before the loop buys anything: a ``ray://`` address without Ray Client, or a
        cluster that does not answer, failed in round 1 with round 0 already bought."""
        import importlib.util

        if self.address and str(self.address).startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise StrategyError(f"loop.engine.address {self.address!r} connects through Ray Client, which is not "
                                "installed: pip install 'ray[client]' (or give the cluster's GCS address, host:6379, "
                                "on a machine of the cluster)")
        try:
            self._ray()
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
            raise StrategyError(f"loop.engine.address {self.address!r}: cannot start or reach Ray: {e}") from e

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as e:
            raise StrategyError(f"the ray engine needs Ray: pip install 'clicloop[ray]' ({e})") from e
        if not ray.is_initialized():
            import signal
            import threading

            kwargs = dict(self.init_kwargs or {})
            if self.address is None:
                kwargs.setdefault("num_cpus", self.num_workers)
            main = threading.current_thread() is threading.main_thread()
            before = signal.getsignal(signal.SIGTERM) if main else None
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **kwargs)
            if before is not None:  # ray.init puts its own SIGTERM handler (sys.exit) in the main thread: clicloop's back
                signal.signal(signal.SIGTERM, before)
        return ray

    def _workers(self, ray: Any) -> list[Any]:
        """The engine's actors, started once and kept for later queries (a process start costs ~1 s)."""
        if getattr(self, "actors_", None) is None:
            Scorer = ray.remote(num_cpus=1)(_Scorer)
            self.actors_ = [Scorer.remote() for _ in range(self.num_workers)]
        return self.actors_

    def close(self) -> None:
        """Stop the engine's actors (the Ray cluster itself is left running)."""
        if getattr(self, "actors_", None):
            import ray

            for actor in self.actors_:
                ray.kill(actor)
        self.actors_ = None

    def top_k(self, strategy: Strategy, model: Model | None, source: Any, k: int, rng: np.random.Generator, *,
              n_rows: int | None = None, exclude: np.ndarray | None = None, chunk_size: int = 65536) -> np.ndarray:
        """Row numbers of the ``k`` best rows not in ``exclude``, best first (as the local engine)."""
        if callable(getattr(strategy, "select", None)):
            raise StrategyError(f"{strategy!r} selects whole batches; the ray engine takes score strategies only")
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        score_rng, tie_rng = rng.spawn(2)
        if not all(isinstance(g.bit_generator, np.random.PCG64) for g in (score_rng, tie_rng)):
            raise StrategyError("the ray engine needs a PCG64 Generator (np.random.default_rng) to match the local engine")
        seqs = (score_rng.bit_generator.seed_seq, tie_rng.bit_generator.seed_seq)
        if n_rows is None:
            n_rows = np.load(source, mmap_mode="r").shape[0] if isinstance(source, (str, Path)) else source.shape[0]
        excluded = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None else np.empty(0, np.int64)
        ray = self._ray()
        src = str(source) if isinstance(source, (str, Path)) else ray.put(np.asarray(source))
        actors = self._workers(ray)
        model_ref, strategy_ref = ray.put(model), ray.put(strategy)  # shipped once per query, not per range
        futures = []
        for j, start in enumerate(range(0, n_rows, self.range_rows)):
            stop = min(start + self.range_rows, n_rows)
            ex = excluded[(excluded >= start) & (excluded < stop)]
            position = start - int(np.searchsorted(excluded, start))
            futures.append(actors[j % len(actors)].top_k.remote(strategy_ref, model_ref, src, start, stop, ex, position,
                                                                 seqs, k, chunk_size))
        parts = ray.get(futures)
        bi = np.concatenate([p[0] for p in parts])
        bs = np.concatenate([p[1] for p in parts])
        bt = np.concatenate([p[2] for p in parts])
        bi, bs, bt = _keep_top(bi, bs, bt, k)
        return bi[np.lexsort((bt, -bs))]


class _Scorer:
    """A Ray actor that scores ranges of the pool with the model it is sent (one per query)."""

    def top_k(self, strategy: Strategy, model: Model | None, source: Any, start: int, stop: int, excluded: np.ndarray,
              position: int, seqs: Any, k: int, chunk_size: int) -> tuple[np.ndarray, ...]:
        return _range_top_k(strategy, model, source, start, stop, excluded, position, seqs, k, chunk_size)
