"""modAL's query functions as clicloop strategies: ``strategy: {name: "modal:margin_sampling"}``.

modAL-python (T. Danka and P. Horvath, "modAL: A modular active learning framework for Python",
arXiv:1805.00979, 2018) is imported only when a query runs (``import modAL`` takes seconds and
pulls torch). Its learner is broken on scikit-learn >= 1.8, so only its functions are used, on a
small shim that looks like a modAL learner or committee.

The single-item functions (``uncertainty_sampling``, ``margin_sampling``, ``entropy_sampling``)
run through their modAL measure (``classifier_uncertainty`` ...) chunk by chunk with clicloop's
running top-k and tie-breaking; batch and committee functions receive every candidate at once,
as in modAL, with ``n_instances = k``; extra params go to the modAL function.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.hookspecs import Register
from clicloop.orchestrator.types import Model
from clicloop.strategies.select import SelectContext, select_top_k

# name -> (module, measure, sign): the score is sign * measure (higher = more informative)
SCORED = {
    "uncertainty_sampling": ("modAL.uncertainty", "classifier_uncertainty", 1.0),
    "margin_sampling": ("modAL.uncertainty", "classifier_margin", -1.0),
    "entropy_sampling": ("modAL.uncertainty", "classifier_entropy", 1.0),
}
BATCH = {"uncertainty_batch_sampling": "modAL.batch"}
COMMITTEE = {
    "vote_entropy_sampling": "modAL.disagreement",
    "consensus_entropy_sampling": "modAL.disagreement",
    "max_disagreement_sampling": "modAL.disagreement",
}


class _Learner:
    """The few attributes modAL's functions read from a learner or a committee."""

    on_transformed = False

    def __init__(self, model: Any, X_training: Any):
        self.estimator = model
        self.X_training = X_training
        self.classes_ = np.asarray(model.classes_)

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X))

    # committee side (modAL.disagreement)
    def __len__(self) -> int:
        return int(np.asarray(self.estimator.predict_proba_members(self.X_training[:1])).shape[0])

    def __iter__(self) -> Any:
        return iter(range(len(self)))

    def vote_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba_members(X)).transpose(1, 0, 2)

    def vote(self, X: Any, **kwargs: Any) -> np.ndarray:
        return self.classes_[self.vote_proba(X).argmax(axis=2)]


class ModalStrategy:
    """One modAL query function by name (see the module docstring)."""

    def __init__(self, function: str, **params: Any):
        known = {**SCORED, **BATCH, **COMMITTEE}
        if function not in known:
            raise ValueError(f"unknown modAL query function {function!r}; known: {', '.join(sorted(known))}")
        self.function = function
        self.params = params
        if function in COMMITTEE:
            self.requires: tuple[str, ...] = ("predict_proba_members",)
        elif function in BATCH:
            self.requires = ("predict_proba", "features")
        else:
            self.requires = ("predict_proba",)

    def _fn(self, module: str, name: str) -> Any:
        import importlib

        try:
            return getattr(importlib.import_module(module), name)
        except ImportError as e:
            raise StrategyError(f"strategy 'modal:{self.function}' needs modAL: pip install 'clicloop[modal]' ({e})") from e

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray:
        if self.function not in SCORED:
            raise StrategyError(f"modal:{self.function} selects whole batches; call select(), not score()")
        if model is None:
            raise ValueError(f"modal:{self.function} needs a fitted model")
        module, measure, sign = SCORED[self.function]
        return sign * np.asarray(self._fn(module, measure)(model, X, **self.params), dtype=np.float64)

    def select(self, model: Model | None, X: Any, candidates: np.ndarray, k: int, rng: np.random.Generator, *,
               chunk_size: int, ids: np.ndarray | None, context: SelectContext) -> np.ndarray:
        if self.function in SCORED:
            return select_top_k(self, model, X, candidates, k, rng, chunk_size=chunk_size, ids=ids)
        if model is None:
            raise StrategyError(f"modal:{self.function} needs a fitted model")
        module = BATCH.get(self.function) or COMMITTEE[self.function]
        X_cand = X[candidates]
        learner = _Learner(model, X[context.labeled] if context.labeled.size else X_cand[:0])
        if self.function in BATCH and learner.X_training.shape[0] == 0:
            learner.X_training = None  # modAL's cold-start branch
        out = self._fn(module, self.function)(learner, X_cand, n_instances=k, **self.params)
        picked = np.asarray(out[0] if isinstance(out, tuple) else out, dtype=np.int64).reshape(-1)
        _, first = np.unique(picked, return_index=True)
        picked = picked[np.sort(first)]  # modAL's cold-start branch can repeat its first pick
        if picked.size < k:  # ... and then return fewer than asked: fill by uncertainty
            rest = np.setdiff1d(np.arange(candidates.size), picked)
            u = 1.0 - np.asarray(model.predict_proba(X_cand[rest])).max(axis=1)
            picked = np.concatenate([picked, rest[np.argsort(-u, kind="stable")][: k - picked.size]])
        return candidates[picked]

    def __repr__(self) -> str:
        return f"ModalStrategy({self.function!r})"


def register_all(register: Register) -> None:
    """Register every known modAL function as ``modal:<name>`` (modAL itself is not imported)."""
    for name in (*SCORED, *BATCH, *COMMITTEE):
        register(f"modal:{name}", functools.partial(ModalStrategy, name), requires=("modAL",), extra="modal")
