"""Uncertainty measures on class probabilities, each a pure function ``P (n, k) -> scores (n,)``
with one orientation: higher = more informative.

References
----------
- Least confidence: D. Lewis and W. Gale, "A sequential algorithm for training text
  classifiers", SIGIR 1994; A. Culotta and A. McCallum, "Reducing labeling effort for structured
  prediction tasks", AAAI 2005.
- Margin: T. Scheffer, C. Decomain and S. Wrobel, "Active hidden Markov models for information
  extraction", IDA 2001.
- Entropy: C. Shannon, 1948, as an acquisition function in B. Settles, "Active Learning
  Literature Survey", University of Wisconsin-Madison TR 1648, 2009.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clicloop.orchestrator.types import Model


def least_confidence(proba: np.ndarray) -> np.ndarray:
    """``1 - max_k P(k|x)``: how far the most likely class is from certainty."""
    return 1.0 - proba.max(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """``1 - (P(first) - P(second))``: a small gap between the two likeliest classes scores high."""
    if proba.shape[1] < 2:
        return np.zeros(proba.shape[0], dtype=proba.dtype)
    if proba.shape[1] <= 64:  # few classes: a running top-two over class columns is ~5x faster
        Q = np.ascontiguousarray(proba.T)
        first, second = Q[0].copy(), np.full(Q.shape[1], -np.inf, dtype=Q.dtype)
        for z in Q[1:]:
            np.maximum(second, np.minimum(first, z), out=second)
            np.maximum(first, z, out=first)
        return 1.0 - (first - second)
    top2 = np.partition(proba, proba.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum_k P log P`` (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(proba > 0, np.log(proba), 0.0)
    return -(proba * logp).sum(axis=1)


class ProbaStrategy:
    """A strategy that scores ``model.predict_proba(X)`` with one uncertainty measure."""

    requires: tuple[str, ...] = ("predict_proba",)
    rng_free = True  # scores draw no random numbers: chunks may be scored in parallel
    measure = staticmethod(margin)
    fused: str | None = None  # name of the measure in clicloop.strategies.linear, for linear softmax models

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray:
        if model is None:
            raise ValueError(f"{type(self).__name__} needs a fitted model")
        if self.fused is not None and is_numeric(X):
            from clicloop.strategies.linear import fused_scores, linear_head

            head = linear_head(model)
            if head is not None:
                return fused_scores(X, head[0], head[1], self.fused)
        return self.measure(np.asarray(model.predict_proba(X)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LeastConfidence(ProbaStrategy):
    """Least-confidence sampling (Lewis and Gale 1994)."""

    measure = staticmethod(least_confidence)
    fused = "least-confidence"


class Margin(ProbaStrategy):
    """Margin sampling (Scheffer et al. 2001)."""

    measure = staticmethod(margin)
    fused = "margin"


class Entropy(ProbaStrategy):
    """Maximum-entropy sampling (Settles 2009)."""

    measure = staticmethod(entropy)
    fused = "entropy"


class RandomSampling:
    """Uniform random selection: the baseline every strategy is measured against."""

    requires: tuple[str, ...] = ()

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray:
        return rng.random(_n_rows(X))

    def __repr__(self) -> str:
        return "RandomSampling()"


def _n_rows(X: Any) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


def is_numeric(X: Any) -> bool:
    """True for a 2-D numeric array (in memory or memory-mapped): features diversity can use."""
    dtype = getattr(X, "dtype", None)
    return dtype is not None and getattr(X, "ndim", 0) == 2 and dtype.kind in "fiub"
