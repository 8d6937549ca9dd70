"""Triage conditions (Amazon A2I's activation conditions as the reference design).

A condition looks at a batch of prediction rows and answers, per row, whether it fires, its
priority (higher = review first) and what fired (``{"condition", "value", "threshold"}``).
Conditions combine with ``{"all": [...]}`` and ``{"any": [...]}`` (see :mod:`.triage`).
Caps (the daily review budget) limit what the conditions before them in an ``all`` selected.
Every condition is pure given its context: randomness only from stable hashes of ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from clicloop.orchestrator.ledger.money import exact, parse
from clicloop.orchestrator.postdeploy.records import FEEDBACK, day_of
from clicloop.orchestrator.seeding import stable_int

Fired = dict[str, Any]
_TOKEN = re.compile(r"[a-z0-9']+")


@dataclass
class Outcome:
    """Per row: fired or not, priority, and the leaf conditions that fired."""

    mask: np.ndarray
    priority: np.ndarray
    fired: list[list[Fired]]

    @staticmethod
    def of(mask: np.ndarray, priority: np.ndarray, entry: Any) -> Outcome:
        """``entry(i)`` describes row i when it fires."""
        return Outcome(mask, np.where(mask, priority, 0.0), [[entry(i)] if m else [] for i, m in enumerate(mask)])


@dataclass
class TriageContext:
    """What conditions may use: the serving model and how to turn rows into its input, the
    training vocabulary and feature vectors (novelty), the plugin registry (strategies), and the
    deployment store (budgets)."""

    model: Any = None
    featurize: Any = None  # rows -> X for the model
    vocabulary: frozenset[str] | None = None
    reference: np.ndarray | None = None  # L2-normalised training vectors
    registry: Any = None
    store: Any = None
    policy: str = "default"
    cache: dict[str, Any] = field(default_factory=dict)

    def X(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        """The model input of ``rows``, computed once per batch (the batch is held, so never mistaken)."""
        if self.cache.get("rows") is not rows:
            if self.featurize is None:
                raise ValueError("this condition needs the model's input: give the triage a featurize function")
            self.cache = {"rows": rows, "X": self.featurize(rows)}
        return self.cache["X"]


class LowConfidence:
    """Fires when the confidence is below ``threshold`` (or ``per_label[label]``); a prediction
    without a confidence fires too (nothing says it is sure)."""

    def __init__(self, threshold: float = 0.5, per_label: Mapping[str, float] | None = None):
        if not 0 <= threshold <= 1 or any(not 0 <= t <= 1 for t in (per_label or {}).values()):
            raise ValueError("confidence thresholds must lie in [0, 1]")
        self.threshold, self.per_label = threshold, dict(per_label or {})

    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        conf = np.array([np.nan if r["confidence"] is None else r["confidence"] for r in rows], dtype=float)
        limit = np.array([self.per_label.get(r["predicted_label"], self.threshold) for r in rows], dtype=float)
        mask = np.isnan(conf) | (conf < limit)
        prio = np.where(np.isnan(conf), 1.0, 1.0 - np.nan_to_num(conf))
        return Outcome.of(mask, prio, lambda i: {"condition": "low-confidence", "value": None if np.isnan(conf[i]) else
                                                 round(float(conf[i]), 4), "threshold": float(limit[i])})


class UserFlagged:
    """Fires on user feedback (thumbs-down, "not what I asked", a rephrasing)."""

    def __init__(self, feedback: Sequence[str] = FEEDBACK):
        unknown = set(feedback) - set(FEEDBACK)
        if unknown:
            raise ValueError(f"unknown feedback {sorted(unknown)}; known: {', '.join(FEEDBACK)}")
        self.feedback = frozenset(feedback)

    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        mask = np.array([r["feedback"] in self.feedback for r in rows], dtype=bool)
        return Outcome.of(mask, np.ones(len(rows)), lambda i: {"condition": "user-flagged", "value": rows[i]["feedback"]})


class RandomAudit:
    """Fires for a ``rate`` share of predictions, decided by a stable hash of the prediction id
    (and ``salt``): re-sending a prediction never re-rolls. Audits estimate the error rate."""

    audit = True

    def __init__(self, rate: float = 0.02, salt: str = "audit"):
        if not 0 <= rate <= 1:
            raise ValueError("rate must lie in [0, 1]")
        self.rate, self.salt = rate, salt

    def draw(self, prediction_id: str) -> float:
        return stable_int(f"{self.salt}/{prediction_id}") / 2.0**64

    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        u = np.array([self.draw(r["prediction_id"]) for r in rows], dtype=float)
        mask = u < self.rate
        return Outcome.of(mask, np.full(len(rows), 2.0),
                          lambda i: {"condition": "random-audit", "value": round(float(u[i]), 6), "threshold": self.rate})


class RandomReview(RandomAudit):
    """Fires for a ``rate`` share of predictions, like :class:`RandomAudit` (stable per id), but
    its reviews are training data, not audits: the baseline "review at random" policy. Its
    priority is the random draw, so a budget cap keeps a uniform random subset."""

    audit = False

    def __init__(self, rate: float = 1.0, salt: str = "review"):
        super().__init__(rate, salt)

    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        u = np.array([self.draw(r["prediction_id"]) for r in rows], dtype=float)
        mask = u < self.rate
        return Outcome.of(mask, 1.0 - u, lambda i: {"condition": "random-review", "value": round(float(u[i]), 6),
                                                    "threshold": self.rate})


class Novelty:
    """Out of distribution: the share of words never seen in training above
    ``max_unknown_share``, or (feature inputs) a cosine distance to the nearest training vector
    above ``min_distance``. Either test may be switched off with None."""

    def __init__(self, max_unknown_share: float | None = 0.5, min_distance: float | None = None):
        if max_unknown_share is None and min_distance is None:
            raise ValueError("switch on at least one test: max_unknown_share (0..1) or min_distance (0..2)")
        if (max_unknown_share is not None and not 0 <= max_unknown_share <= 1) or (
                min_distance is not None and not 0 <= min_distance <= 2):
            raise ValueError("max_unknown_share must lie in [0, 1] and min_distance (cosine distance) in [0, 2]")
        self.max_unknown_share, self.min_distance = max_unknown_share, min_distance

    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        if self.max_unknown_share is not None and ctx.vocabulary is None:
            raise ValueError("novelty by unknown terms needs the training vocabulary (CLI: `deploy triage --base "
                             "labeled.jsonl`), or set max_unknown_share to null")
        if self.min_distance is not None and ctx.reference is None:
            raise ValueError("novelty by distance needs the training vectors (CLI: `deploy triage --base labeled.jsonl` "
                             "with features), or set min_distance to null")
        n = len(rows)
        share = np.zeros(n)
        distance = np.zeros(n)
        if self.max_unknown_share is not None:
            for i, r in enumerate(rows):
                words = _TOKEN.findall((r.get("text") or "").lower())
                share[i] = sum(w not in ctx.vocabulary for w in words) / len(words) if words else 0.0  # type: ignore[operator]
        if self.min_distance is not None:
            distance = _nearest_distance(np.asarray(ctx.X(rows), dtype=np.float32), ctx.reference)  # type: ignore[arg-type]
        by_terms = share > self.max_unknown_share if self.max_unknown_share is not None else np.zeros(n, bool)
        by_distance = distance > self.min_distance if self.min_distance is not None else np.zeros(n, bool)
        mask = by_terms | by_distance
        return Outcome.of(mask, np.maximum(share, distance), lambda i: {
            "condition": "novelty", "value": {"unknown_share": round(float(share[i]), 4), "distance": round(float(distance[i]), 4)},
            "threshold": {"max_unknown_share": self.max_unknown_share, "min_distance": self.min_distance}})


def vocabulary_of(texts: Sequence[str | None]) -> frozenset[str]:
    """The words of ``texts``, tokenised as :class:`Novelty` does (for ``TriageContext.vocabulary``)."""
    return frozenset(w for text in texts for w in _TOKEN.findall((text or "").lower()))


def normalised(X: Any) -> np.ndarray:
    """Rows scaled to unit length (for ``TriageContext.reference``)."""
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _nearest_distance(X: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """1 - the largest cosine similarity to a reference row (rows L2-normalised here)."""
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    out = np.empty(len(X))
    for i in range(0, len(X), chunk):
        out[i : i + chunk] = 1.0 - (X[i : i + chunk] @ reference.T).max(axis=1)
    return out


PLUGIN = "clicloop.orchestrator.postdeploy.plugin"


def triage_registry(extra_modules: Sequence[str] = ()) -> Any:
    """The plugin registry with the built-in triage policies (and ``extra_modules``)."""
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager

    return Registry(get_plugin_manager([PLUGIN, *extra_modules]))


class StrategyScore:
    """The active-learning strategy's score under the serving model, at or above ``threshold``
    (e.g. margin >= 0.7: the two likeliest labels are close)."""

    def __init__(self, strategy: str = "margin", threshold: float = 0.5, params: Mapping[str, Any] | None = None, seed: int = 0):
        self.strategy, self.threshold, self.params, self.seed = strategy, threshold, dict(params or {}), seed

    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        from clicloop.orchestrator.seeding import rng_for

        if ctx.model is None:
            raise ValueError("strategy-score needs the serving model: register the serving version with its model file "
                             "(`clicloop deploy register <version> --labels ... --model model.joblib`)")
        if ctx.registry is None:
            ctx.registry = triage_registry()
        strategy = ctx.registry.create("strategy", self.strategy, self.params, field="triage.strategy")
        rng = rng_for(self.seed, "triage", self.strategy, rows[0]["prediction_id"] if rows else "")
        score = np.asarray(strategy.score(ctx.model, ctx.X(rows), rng), dtype=float)
        mask = score >= self.threshold
        return Outcome.of(mask, score, lambda i: {"condition": f"strategy-score:{self.strategy}",
                                                  "value": round(float(score[i]), 4), "threshold": self.threshold})


class DailyBudget:
    """A cap: per UTC day, at most ``hours`` of review time or ``money`` of review cost. The cost of
    one review is ``seconds_per_review`` / ``cost_per_review``, or, when None, the mean of the
    reviews recorded so far (60 s and 0.1 until there are any). Audits go first, then priority.
    Money is exact: ``money`` and ``cost_per_review`` are read as Decimals (a float by its repr),
    so a budget of 0.3 pays three reviews of 0.1, not two."""

    cap = True

    def __init__(self, hours: float | None = None, money: Decimal | float | str | None = None,
                 seconds_per_review: float | None = None, cost_per_review: Decimal | float | str | None = None):
        if (hours is None) == (money is None):
            raise ValueError("give exactly one of 'hours' or 'money'")
        if (hours is not None and hours < 0) or (money is not None and _amount(money, "money") < 0):
            raise ValueError("a budget must not be negative")
        if cost_per_review is not None:
            _amount(cost_per_review, "cost_per_review")  # an amount of money, or the ValueError that names it
        self.hours, self.money = hours, money
        self.seconds_per_review, self.cost_per_review = seconds_per_review, cost_per_review

    def capacity(self, ctx: TriageContext) -> int:
        """Reviews per day the budget pays for (money: exact Decimal division)."""
        if self.hours is not None:
            per_s = self._seconds(ctx)
            return int(self.hours * 3600 / per_s) if per_s > 0 else 10**12
        per = self._cost(ctx)
        return int(_amount(self.money, "money") // per) if per > 0 else 10**12

    def _seconds(self, ctx: TriageContext) -> float:
        if self.seconds_per_review is not None:
            return self.seconds_per_review
        spent = ctx.store.review_spent() if ctx.store is not None else {"answers": 0}
        return spent["total_hours"] * 3600 / spent["answers"] if spent["answers"] else 60.0

    def _cost(self, ctx: TriageContext) -> Decimal:
        if self.cost_per_review is not None:
            return _amount(self.cost_per_review, "cost_per_review")
        spent = ctx.store.review_spent() if ctx.store is not None else {"answers": 0}
        return exact(spent["cost"]) / spent["answers"] if spent["answers"] else Decimal("0.1")

    def limit(self, rows: Sequence[Mapping[str, Any]], out: Outcome, audit: np.ndarray, ctx: TriageContext) -> Outcome:
        cap = self.capacity(ctx)
        days = [day_of(r["predicted_at"]) for r in rows]
        used = {d: ctx.store.selected_on(ctx.policy, d) if ctx.store is not None else 0 for d in set(days)}
        order = sorted(np.flatnonzero(out.mask), key=lambda i: (not audit[i], -out.priority[i], i))
        mask = out.mask.copy()
        for i in order:
            d = days[i]
            if used[d] < cap:
                used[d] += 1
                out.fired[i].append({"condition": "daily-budget", "value": used[d], "threshold": cap})
            else:
                mask[i] = False
                out.fired[i].append({"condition": "daily-budget", "value": used[d], "threshold": cap, "exhausted": True})
        return Outcome(mask, out.priority, out.fired)


def _amount(value: Any, what: str) -> Decimal:
    """A daily budget's money parameter, exact (a ValueError naming it otherwise)."""
    return parse(value, f"daily-budget params.{what}")
