"""Helpers for the label-efficiency benchmark: datasets, a warm-started multinomial logistic
regression (the same objective as scikit-learn's LogisticRegression, fitted by L-BFGS in torch on
the whole label set, so rounds are fast), and a simulated pool-based loop with a perfect oracle.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def load_dataset(spec: str) -> dict[str, Any]:
    """``digits`` (scikit-learn, standardised, fixed 30% test split) or a folder holding
    ``<name>.jsonl`` and ``<name>.minilm.npy`` (in-scope train -> pool, in-scope test -> eval)."""
    if spec == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        tr, te = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=y)
        mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-6
        X = ((X - mu) / sd).astype(np.float32)
        return {"name": "digits", "X": X[tr], "y": y[tr], "Xte": X[te], "yte": y[te], "C": 1.0, "seed_size": 20}
    folder = Path(spec)
    name = folder.name
    rows = [json.loads(line) for line in open(folder / f"{name}.jsonl")]
    E = np.load(folder / f"{name}.minilm.npy").astype(np.float32)
    labels = np.array([r["label"] for r in rows])
    split = np.array([r["split"] for r in rows])
    keep = labels != "oos"
    classes, yi = np.unique(labels[keep], return_inverse=True)
    y = np.full(len(rows), -1)
    y[keep] = yi
    tr, te = np.flatnonzero(keep & (split == "train")), np.flatnonzero(keep & (split == "test"))
    return {"name": name, "X": E[tr], "y": y[tr], "Xte": E[te], "yte": y[te], "C": 10.0, "seed_size": 200}


class WarmLR:
    """Multinomial logistic regression, L2 (``C`` as in scikit-learn, intercept unpenalised),
    over a fixed label set, warm-started from the previous fit. ``linear_softmax_`` lets
    clicloop's fused path score it."""

    linear_softmax_ = True

    def __init__(self, n_classes: int, C: float = 1.0, max_iter: int = 200):
        self.n_classes = n_classes
        self.C = C
        self.max_iter = max_iter
        self.classes_ = np.arange(n_classes)
        self.W_: Any = None

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> WarmLR:
        """Weighted as scikit-learn: ``sum_i w_i CE_i + ||W||^2 / (2 C)`` (no weights: all 1)."""
        import torch

        X_t = torch.from_numpy(np.asarray(X, dtype=np.float64))
        y_t = torch.from_numpy(np.asarray(y, dtype=np.int64))
        w_t = None if sample_weight is None else torch.from_numpy(np.asarray(sample_weight, dtype=np.float64))
        d = X.shape[1]
        if self.W_ is None:
            self.W_ = torch.zeros(d + 1, self.n_classes, dtype=torch.float64)
        W = self.W_.clone().requires_grad_()
        opt = torch.optim.LBFGS([W], max_iter=self.max_iter, tolerance_grad=1e-6, tolerance_change=1e-10,
                                history_size=20, line_search_fn="strong_wolfe")
        lam = 1.0 / (self.C * (len(y) if w_t is None else float(w_t.sum())))

        def closure() -> Any:
            opt.zero_grad()
            logits = X_t @ W[:-1] + W[-1]
            if w_t is None:
                ce = torch.nn.functional.cross_entropy(logits, y_t)
            else:
                ce = (torch.nn.functional.cross_entropy(logits, y_t, reduction="none") * w_t).sum() / w_t.sum()
            loss = ce + 0.5 * lam * (W[:-1] ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.W_ = W.detach()
        self.coef_ = self.W_[:-1].T.numpy().copy()
        self.intercept_ = self.W_[-1].numpy().copy()
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def run_curve(ds: dict[str, Any], strategy_name: str, seed: int, batch: int, max_labels: int,
              cold_start: int | None = None, model_name: str = "warm-lr",
              training: dict[str, float] | None = None, noise: float = 0.0,
              pseudo_start: str = "previous") -> list[tuple[int, float]]:
    """``(labels, accuracy on the fixed eval split)`` after every round of :func:`rounds`."""
    curve = []
    for labeled, model, Xte in rounds(ds, strategy_name, seed, batch, max_labels, cold_start, model_name, training,
                                      noise, pseudo_start):
        acc = float((np.asarray(model.classes_)[model.predict_proba(Xte).argmax(1)] == ds["yte"]).mean())
        curve.append((int(labeled.size), acc))
    return curve


def rounds(ds: dict[str, Any], strategy_name: str, seed: int, batch: int, max_labels: int,
           cold_start: int | None = None, model_name: str = "warm-lr",
           training: dict[str, float] | None = None,
           noise: float = 0.0, pseudo_start: str = "previous") -> Iterator[tuple[np.ndarray, Any, np.ndarray]]:
    """One simulated loop: the same seed labels for every strategy (drawn from ``seed``), a
    perfect oracle. After every round it yields the labeled pool indices, the model trained on
    them and the eval features that model reads (mapped, for ``prior``); it stops at ``max_labels``.

    ``noise=p``: the oracle errs, as a crowd does: each pool item's answer is, with probability
    ``p``, another class drawn uniformly (:func:`noisy_answers`, fixed by ``seed``, so every
    strategy of a seed gets the same answer for the same item). The eval split stays true.

    ``query-human=1`` in ``training``: the strategy scores the pool with the model fitted on the
    human labels alone, while the model trained with the other changes is the one evaluated (and
    the one a deployment would use): a pool item that trained the model with its own pseudo-label
    looks surer to that model than the human labels warrant.

    ``pseudo_start``: where a pseudo-labeled fit starts L-BFGS, ``"previous"`` (the last round's
    pseudo-labeled fit) or ``"base"`` (this round's labeled-only fit, as the tables in
    ``docs/benchmarks/log.md`` measured before ``"previous"`` became the default). The objective is
    convex, so both end at its optimum up to the solver's tolerance; ``"previous"`` takes fewer
    steps, and the two differ only in round accuracies at that tolerance (with ``query-human``)
    or, without it, in picks that follow from those.

    ``cold_start=n`` (a change of the starting set, not of the strategy): the first ``n`` labels
    are picked by clicloop's cold-start selector (TypiClust coverage, no model, no labels, its
    randomness from ``seed``) instead of ``seed_size`` random pool items; the curve then starts
    at ``n`` labels. ``None`` is exactly the plain run.

    ``model_name`` (a different model, for the strategies that need one; compare only runs with
    the same model): ``"warm-lr"`` (the default, :class:`WarmLR`), ``"committee"`` (clicloop's
    bagged committee of 5 scaled logistic regressions, ``C`` as the data set's, for
    query-by-committee) or ``"mc-dropout"`` (clicloop's MC-dropout MLP, 256 hidden units,
    dropout 0.3, for BALD); the latter two are refitted from scratch every round (seeded)."""
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager
    from clicloop.orchestrator.seeding import rng_for
    from clicloop.strategies.select import SelectContext, select

    registry = Registry(get_plugin_manager(load_entrypoints=False))
    name, _, query = strategy_name.partition("?")  # e.g. "cluster-margin?factor=3&avoid_labeled=true"
    params = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in query.split("&") if kv)}
    strategy = registry.create("strategy", name, params)
    X, y = ds["X"], ds["y"]
    n_classes = int(max(y.max(), ds["yte"].max()) + 1)
    if noise:
        y = noisy_answers(y, noise, n_classes, seed)
    if cold_start is None:
        labeled = np.sort(np.random.default_rng(seed).choice(len(y), ds["seed_size"], replace=False))
    else:
        from clicloop.strategies.diversity import ColdStart

        labeled = np.sort(ColdStart().select(None, X, np.arange(len(y)), cold_start, rng_for(seed, "cold-start"),
                                             chunk_size=65536, ids=None, context=SelectContext()))
    from benchmarks._training import train

    training = dict(training or {})
    if "prior" in training:
        from benchmarks._training import prior_map

        ds = prior_map(ds, training.pop("prior"))
        X = ds["X"]
    if model_name != "warm-lr" and training:
        raise ValueError("training changes are measured with the warm-lr model only")
    model = WarmLR(n_classes, training.get("C", ds["C"])) if model_name == "warm-lr" else None
    if pseudo_start not in ("previous", "base"):
        raise ValueError(f"pseudo_start must be 'previous' or 'base', got {pseudo_start!r}")
    r, used = 0, None
    while True:
        if model_name != "warm-lr":
            model = other_model(model_name, ds["C"], seed)
        model.fit(X[labeled], y[labeled])
        previous = used if pseudo_start == "previous" else None
        used = train(model, X, y, labeled, training, previous) if training else model
        yield labeled, used, ds["Xte"]
        query = model if training.get("query-human") else used  # still the human-label fit: train copies it
        if labeled.size >= max_labels:
            return
        cand = np.setdiff1d(np.arange(len(y)), labeled)
        k = min(batch, max_labels - labeled.size)
        if training.get("contention") and getattr(used, "contention_", cand).size >= k:
            cand = used.contention_
        picked = select(strategy, query, X, cand, k, rng_for(seed, "select", r), chunk_size=65536,
                        context=SelectContext(labeled=labeled, seconds=None))
        labeled = np.sort(np.concatenate([labeled, picked]))
        r += 1


def noisy_answers(y: np.ndarray, rate: float, n_classes: int, seed: int) -> np.ndarray:
    """The answers of an erring oracle: each item's true class, or with probability ``rate``
    one of the other classes, uniformly; the same for every strategy run with ``seed``."""
    from clicloop.orchestrator.seeding import rng_for

    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {rate}")
    rng = rng_for(seed, "oracle-noise")
    wrong = rng.random(y.size) < rate
    return np.where(wrong, (y + rng.integers(1, n_classes, y.size)) % n_classes, y)


MODELS = {  # benchmark name -> (clicloop's registered model, its params besides C and seed)
    "committee": ("committee", {"n_members": 5, "base": "scaled-logreg"}),
    "mc-dropout": ("mc-dropout-mlp", {"hidden": 256, "dropout": 0.3}),
}


def other_model(name: str, C: float, seed: int) -> Any:
    """A fresh, seeded instance of one of clicloop's registered models (see :func:`run_curve`)."""
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: warm-lr, {', '.join(MODELS)}")
    registered, params = MODELS[name]
    params = {**params, "seed": seed, **({"C": C} if registered == "committee" else {})}
    return Registry(get_plugin_manager(load_entrypoints=False)).create("model", registered, params)


def full_accuracy(ds: dict[str, Any], model_name: str = "warm-lr") -> float:
    """Test accuracy of ``model_name`` fitted on the whole pool (seed 0 for the seeded models)."""
    n_classes = int(max(ds["y"].max(), ds["yte"].max()) + 1)
    if model_name == "warm-lr":
        model = WarmLR(n_classes, ds["C"], max_iter=500).fit(ds["X"], ds["y"])
    else:
        model = other_model(model_name, ds["C"], 0).fit(ds["X"], ds["y"])
    return float((np.asarray(model.classes_)[model.predict_proba(ds["Xte"]).argmax(1)] == ds["yte"]).mean())
