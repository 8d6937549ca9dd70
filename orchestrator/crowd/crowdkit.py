"""Aggregators through crowd-kit: Dawid-Skene, one-coin Dawid-Skene, GLAD and MACE.

crowd-kit is an extra (``pip install clicloop[crowd]``); it is imported only when an aggregator
runs, so ``import orchestrator`` and ``clicloop plugins`` stay fast and work without it. The
names register through the same hook as the built-in majority vote:

==========================  =====================================================================
``dawid-skene``             per-worker confusion matrices (Dawid & Skene 1979)
``one-coin-dawid-skene``    one accuracy per worker, errors spread evenly over the other labels
``glad``                    worker ability and item difficulty (Whitehill et al. 2009)
``mace``                    workers who are either right or spamming (Hovy et al. 2013)
==========================  =====================================================================

Every aggregator returns, per item, the label with the highest posterior probability from
crowd-kit's ``fit_predict_proba`` and that probability as its confidence. The result does not
depend on the order of the votes (they are sorted first); ties between labels are broken with
the loop's seeded generator, as the majority vote does. crowd-kit's deprecation warnings (it
runs on numpy 2 / pandas 3 / scikit-learn 1.9 with warnings) are silenced around its calls only.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import ClicloopError
from clicloop.orchestrator.hookspecs import Register, hookimpl
from clicloop.orchestrator.types import Consensus, Vote

_TIE_TOLERANCE = 1e-9


class AggregationError(ClicloopError):
    """crowd-kit is missing, or it failed on these votes."""


class _CrowdKitAggregator:
    """Shared plumbing: votes -> DataFrame -> crowd-kit ``fit_predict_proba`` -> Consensus."""

    _crowdkit_name = ""
    pooled = True  # learns worker parameters across items: the loop aggregates every vote so far, each round

    def _model(self, rng: np.random.Generator, aggregation: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def aggregate(self, votes: Sequence[Vote], rng: np.random.Generator) -> list[Consensus]:
        if not votes:
            return []
        ordered = sorted(votes, key=lambda v: (v.item_id, v.worker, v.label))
        n_answers = Counter(v.item_id for v in ordered)
        proba = self._fit_predict_proba(ordered, rng)
        labels = np.asarray([str(c) for c in proba.columns], dtype=object)
        values = proba.to_numpy(dtype=np.float64)
        result = []
        for item_id, row in zip((str(i) for i in proba.index), values):
            row = np.nan_to_num(row, nan=0.0)
            top = float(row.max())
            winners = sorted(labels[row >= top - _TIE_TOLERANCE])
            label = winners[int(rng.integers(len(winners)))] if len(winners) > 1 else winners[0]
            result.append(Consensus(item_id, label, min(max(top, 0.0), 1.0), n_answers[item_id]))
        return sorted(result, key=lambda c: c.item_id)

    def _fit_predict_proba(self, votes: Sequence[Vote], rng: np.random.Generator) -> Any:
        try:
            import pandas as pd
            from crowdkit import aggregation
        except ImportError as e:
            raise AggregationError(
                f"aggregator {self._crowdkit_name!r} needs crowd-kit: pip install 'clicloop[crowd]' ({e})"
            ) from e
        frame = pd.DataFrame(
            {"task": [v.item_id for v in votes], "worker": [v.worker for v in votes], "label": [v.label for v in votes]}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                return self._model(rng, aggregation).fit_predict_proba(frame)
            except (ValueError, LookupError, TypeError, ArithmeticError, NameError, np.linalg.LinAlgError) as e:  # NameError: MACE with no restart
                raise AggregationError(f"crowd-kit {self._crowdkit_name} failed on {len(votes)} votes: {e}") from e


class DawidSkeneAggregator(_CrowdKitAggregator):
    """Dawid-Skene: EM over one confusion matrix per worker.

    Parameters: ``n_iter`` (EM iterations), ``tol`` (convergence tolerance).
    """

    _crowdkit_name = "DawidSkene"

    def __init__(self, n_iter: int = 100, tol: float = 1e-5):
        self.n_iter = n_iter
        self.tol = tol

    def _model(self, rng: np.random.Generator, aggregation: Any) -> Any:
        return aggregation.DawidSkene(n_iter=self.n_iter, tol=self.tol)

    def __repr__(self) -> str:
        return f"DawidSkeneAggregator(n_iter={self.n_iter}, tol={self.tol})"


class OneCoinDawidSkeneAggregator(_CrowdKitAggregator):
    """One-coin Dawid-Skene: one accuracy per worker (fewer parameters: better with few answers)."""

    _crowdkit_name = "OneCoinDawidSkene"

    def __init__(self, n_iter: int = 100, tol: float = 1e-5):
        self.n_iter = n_iter
        self.tol = tol

    def _model(self, rng: np.random.Generator, aggregation: Any) -> Any:
        return aggregation.OneCoinDawidSkene(n_iter=self.n_iter, tol=self.tol)

    def __repr__(self) -> str:
        return f"OneCoinDawidSkeneAggregator(n_iter={self.n_iter}, tol={self.tol})"


class GLADAggregator(_CrowdKitAggregator):
    """GLAD: worker ability and item difficulty, fitted by EM."""

    _crowdkit_name = "GLAD"

    def __init__(self, n_iter: int = 100, tol: float = 1e-5):
        self.n_iter = n_iter
        self.tol = tol

    def _model(self, rng: np.random.Generator, aggregation: Any) -> Any:
        return aggregation.GLAD(n_iter=self.n_iter, tol=self.tol, silent=True)

    def __repr__(self) -> str:
        return f"GLADAggregator(n_iter={self.n_iter}, tol={self.tol})"


class MACEAggregator(_CrowdKitAggregator):
    """MACE: each worker is right or spams; random restarts are seeded.

    ``random_state`` None (the default) draws it from the loop's seeded generator, so the same
    loop seed and round give the same result.
    """

    _crowdkit_name = "MACE"

    def __init__(self, n_restarts: int = 10, n_iter: int = 50, random_state: int | None = None):
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.random_state = random_state

    def _model(self, rng: np.random.Generator, aggregation: Any) -> Any:
        state = self.random_state if self.random_state is not None else int(rng.integers(2**31 - 1))
        return aggregation.MACE(n_restarts=self.n_restarts, n_iter=self.n_iter, random_state=state)

    def __repr__(self) -> str:
        return f"MACEAggregator(n_restarts={self.n_restarts}, n_iter={self.n_iter}, random_state={self.random_state})"


@hookimpl
def clicloop_register_aggregators(register: Register) -> None:
    register("dawid-skene", DawidSkeneAggregator, requires=("crowdkit",), extra="crowd")
    register("one-coin-dawid-skene", OneCoinDawidSkeneAggregator, requires=("crowdkit",), extra="crowd")
    register("glad", GLADAggregator, requires=("crowdkit",), extra="crowd")
    register("mace", MACEAggregator, requires=("crowdkit",), extra="crowd")
