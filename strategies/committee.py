"""Query by committee: a bagged committee model and two disagreement measures.

- Query by committee: H. S. Seung, M. Opper and H. Sompolinsky, "Query by committee", COLT 1992;
  committees by bagging: N. Abe and H. Mamitsuka, "Query Learning Strategies Using Boosting and
  Bagging", ICML 1998.
- Vote entropy: I. Dagan and S. Engelson, "Committee-Based Sampling for Training Probabilistic
  Classifiers", ICML 1995.
- KL divergence to the consensus: A. McCallum and K. Nigam, "Employing EM and Pool-Based Active
  Learning for Text Classification", ICML 1998.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clicloop.orchestrator.types import Model

_BASES = ("logreg", "scaled-logreg")


def vote_entropy(members: np.ndarray) -> np.ndarray:
    """Entropy of the members' hard votes; ``members`` is (m, n, c) class probabilities."""
    m, n, c = members.shape
    votes = members.argmax(axis=2)  # (m, n)
    counts = np.zeros((n, c))
    np.add.at(counts, (np.broadcast_to(np.arange(n), (m, n)), votes), 1.0)
    frac = counts / m
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(np.where(frac > 0, frac * np.log(frac), 0.0)).sum(axis=1)


def kl_to_consensus(members: np.ndarray) -> np.ndarray:
    """Mean KL divergence of each member's distribution to the committee mean."""
    mean = members.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(members > 0, np.log(members) - np.log(np.where(mean > 0, mean, 1.0)), 0.0)
    return np.maximum((members * ratio).sum(axis=2).mean(axis=0), 0.0)


class Committee:
    """A bagged committee of ``n_members`` classifiers (bootstrap samples, seeded).

    ``predict_proba`` is the members' mean; ``predict_proba_members`` gives (m, n, c), columns
    aligned to ``classes_`` (a class a member never saw gets probability 0 from it).
    """

    def __init__(self, n_members: int = 5, base: str = "scaled-logreg", C: float = 1.0, max_iter: int = 2000, seed: int = 0):
        self.n_members = n_members
        self.base = base
        self.C = C
        self.max_iter = max_iter
        self.seed = seed

    def clicloop_provides(self) -> set[str]:
        """What this model offers the strategies (checked when the config loads)."""
        return {"predict_proba", "predict_proba_members"} if self.n_members >= 2 else {"predict_proba"}

    def fit(self, X: Any, y: Any) -> Committee:
        from clicloop.orchestrator.training.logistic import logreg, scaled_logreg

        if self.base not in _BASES:
            raise ValueError(f"committee base must be one of {', '.join(_BASES)}, got {self.base!r}")
        if self.n_members < 1:
            raise ValueError(f"a committee needs at least one member, got n_members={self.n_members}")
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        rng = np.random.default_rng(self.seed)
        make = logreg if self.base == "logreg" else scaled_logreg
        self.members_ = []
        for _ in range(self.n_members):
            for _try in range(10):  # a bootstrap sample with a single class cannot train a classifier
                idx = rng.integers(0, len(y), len(y))
                if np.unique(y[idx]).size >= 2:
                    break
            self.members_.append(make(C=self.C, max_iter=self.max_iter).fit(X[idx] if hasattr(X, "shape") else [X[i] for i in idx], y[idx]))
        return self

    def predict_proba_members(self, X: Any) -> np.ndarray:
        out = np.zeros((len(self.members_), X.shape[0] if hasattr(X, "shape") else len(X), len(self.classes_)))
        for j, member in enumerate(self.members_):
            cols = np.searchsorted(self.classes_, member.classes_)
            out[j][:, cols] = member.predict_proba(X)
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.predict_proba_members(X).mean(axis=0)


class _CommitteeStrategy:
    requires: tuple[str, ...] = ("predict_proba_members",)
    measure = staticmethod(vote_entropy)

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray:
        if model is None or not hasattr(model, "predict_proba_members"):
            raise ValueError(f"{type(self).__name__} needs a committee model (model: committee)")
        return self.measure(np.asarray(model.predict_proba_members(X)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VoteEntropy(_CommitteeStrategy):
    """Query by committee with vote entropy (Dagan and Engelson 1995)."""

    measure = staticmethod(vote_entropy)


class KLToConsensus(_CommitteeStrategy):
    """Query by committee with mean KL divergence to the consensus (McCallum and Nigam 1998)."""

    measure = staticmethod(kl_to_consensus)
