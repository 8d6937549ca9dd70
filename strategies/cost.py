"""Cost-aware selection: informativeness per expected human second.

Return on investment: R. Haertel, K. Seppi, E. Ringger and J. Carroll, "Return on Investment for
Active Learning", NIPS Workshop on Cost-Sensitive Learning, 2008; annotation times vary and are
predictable from the item: B. Settles, M. Craven and L. Friedland, "Active Learning with Real
Annotation Costs", NIPS Workshop on Cost-Sensitive Learning, 2008.

The expected seconds of an item come from a least-squares line ``seconds ~ a + b * feature``
fitted on the active seconds the ledger recorded for labeled items; the feature is the item's
length (characters of a text; non-zero features of a numeric row) or one numeric column. With
fewer than ``min_observations`` timed items, every item costs the same (plain ``base``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.types import Model
from clicloop.strategies.scores import Entropy, LeastConfidence, Margin, ProbaStrategy
from clicloop.strategies.select import SelectContext, select_top_k

_BASES = {"margin": Margin, "entropy": Entropy, "least-confidence": LeastConfidence}


def item_feature(X: Any, feature: str | int) -> np.ndarray:
    """The cost feature of each row: ``"length"`` or a numeric column index."""
    if isinstance(feature, int):
        return np.asarray(X[:, feature], dtype=np.float64)
    if feature != "length":
        raise ValueError(f"cost feature must be 'length' or a column index, got {feature!r}")
    if getattr(X, "ndim", 1) == 2:
        return (np.asarray(X) != 0).sum(axis=1).astype(np.float64)
    return np.fromiter((len(str(x)) for x in X), dtype=np.float64, count=len(X))


class SecondsModel:
    """``seconds ~ a + b * feature`` by least squares, floored at ``floor`` seconds."""

    def __init__(self, prior_seconds: float = 30.0, floor: float = 1.0, min_observations: int = 5):
        self.prior_seconds = prior_seconds
        self.floor = floor
        self.min_observations = min_observations

    def fit(self, f: np.ndarray, seconds: np.ndarray) -> SecondsModel:
        f, seconds = np.asarray(f, np.float64), np.asarray(seconds, np.float64)
        ok = np.isfinite(f) & np.isfinite(seconds) & (seconds >= 0)
        f, seconds = f[ok], seconds[ok]
        if f.size < self.min_observations:
            self.coef_ = np.array([self.prior_seconds, 0.0])
        elif np.ptp(f) == 0:
            self.coef_ = np.array([float(np.median(seconds)), 0.0])
        else:
            A = np.column_stack([np.ones_like(f), f])
            self.coef_ = np.linalg.lstsq(A, seconds, rcond=None)[0]
        return self

    def predict(self, f: np.ndarray) -> np.ndarray:
        return np.maximum(self.coef_[0] + self.coef_[1] * np.asarray(f, np.float64), self.floor)


class _PerSecond(ProbaStrategy):
    @property
    def rng_free(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.base, "rng_free", False))

    def __init__(self, base: ProbaStrategy, seconds: SecondsModel, feature: str | int, power: float):
        self.base, self.seconds, self.feature, self.power = base, seconds, feature, power

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray:
        u = np.asarray(self.base.score(model, X, rng), dtype=np.float64)
        return u / self.seconds.predict(item_feature(X, self.feature)) ** self.power


class CostAware:
    """``base`` informativeness divided by expected seconds^power (Haertel et al. 2008)."""

    requires: tuple[str, ...] = ("predict_proba",)

    def __init__(self, base: str = "margin", feature: str | int = "length", power: float = 1.0,
                 prior_seconds: float = 30.0, min_observations: int = 5):
        if base not in _BASES:
            raise ValueError(f"cost-aware base must be one of {', '.join(_BASES)}, got {base!r}")
        self.base = base
        self.feature = feature
        self.power = power
        self.prior_seconds = prior_seconds
        self.min_observations = min_observations

    def seconds_model(self, X: Any, ids: np.ndarray | None, observed: Mapping[str, float]) -> SecondsModel:
        """Fit the expected-seconds line on the items the ledger has times for."""
        model = SecondsModel(self.prior_seconds, min_observations=self.min_observations)
        if not observed or ids is None:
            return model.fit(np.empty(0), np.empty(0))
        pos = {str(item): i for i, item in enumerate(ids)}
        rows = np.array([pos[i] for i in observed if i in pos], dtype=np.int64)
        secs = np.array([observed[i] for i in observed if i in pos], dtype=np.float64)
        return model.fit(item_feature(X[rows], self.feature) if rows.size else np.empty(0), secs)

    def select(self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
               chunk_size: int, ids: np.ndarray | None, context: SelectContext) -> np.ndarray:
        if model is None:
            raise StrategyError("cost-aware needs a fitted model")
        observed = context.seconds() if context.seconds is not None else {}
        per_second = _PerSecond(_BASES[self.base](), self.seconds_model(X, ids, observed), self.feature, self.power)
        return select_top_k(per_second, model, X, candidates, k, rng, chunk_size=chunk_size, ids=ids)

    def __repr__(self) -> str:
        return f"CostAware(base={self.base!r}, feature={self.feature!r}, power={self.power})"


def ledger_seconds(ledger: Any, loop: str) -> dict[str, float]:
    """Mean active seconds per item over the loop's usable answers, read from the ledger in SQL."""
    from sqlalchemy import func, select

    from clicloop.orchestrator.ledger import schema

    a = schema.assignments.c
    with ledger.engine_.connect() as conn:
        rows = conn.execute(
            select(a.item_id, func.avg(a.active_s)).where(a.loop == loop, a.status == "submitted").group_by(a.item_id)
        ).all()
    return {str(item): float(s) for item, s in rows}
