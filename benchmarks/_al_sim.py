"""Helpers for the label-efficiency benchmark: datasets, a warm-started multinomial logistic
regression (the same objective as scikit-learn's LogisticRegression, fitted by L-BFGS in torch on
the whole label set, so rounds are fast), and a simulated pool-based loop with a perfect oracle.
"""

from __future__ import annotations

import json
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

    def fit(self, X: np.ndarray, y: np.ndarray) -> WarmLR:
        import torch

        X_t = torch.from_numpy(np.asarray(X, dtype=np.float64))
        y_t = torch.from_numpy(np.asarray(y, dtype=np.int64))
        d = X.shape[1]
        if self.W_ is None:
            self.W_ = torch.zeros(d + 1, self.n_classes, dtype=torch.float64)
        W = self.W_.clone().requires_grad_()
        opt = torch.optim.LBFGS([W], max_iter=self.max_iter, tolerance_grad=1e-6, tolerance_change=1e-10,
                                history_size=20, line_search_fn="strong_wolfe")
        lam = 1.0 / (self.C * len(y))

        def closure() -> Any:
            opt.zero_grad()
            logits = X_t @ W[:-1] + W[-1]
            loss = torch.nn.functional.cross_entropy(logits, y_t) + 0.5 * lam * (W[:-1] ** 2).sum()
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


def run_curve(ds: dict[str, Any], strategy_name: str, seed: int, batch: int, max_labels: int) -> list[tuple[int, float]]:
    """One simulated loop: the same seed labels for every strategy (drawn from ``seed``), a
    perfect oracle, accuracy on the fixed eval split after every round."""
    from orchestrator.plugins import Registry, get_plugin_manager
    from orchestrator.seeding import rng_for
    from strategies.select import SelectContext, select

    registry = Registry(get_plugin_manager(load_entrypoints=False))
    name, _, query = strategy_name.partition("?")  # e.g. "cluster-margin?factor=3&avoid_labeled=true"
    params = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in query.split("&") if kv)}
    strategy = registry.create("strategy", name, params)
    X, y = ds["X"], ds["y"]
    n_classes = int(max(y.max(), ds["yte"].max()) + 1)
    labeled = np.sort(np.random.default_rng(seed).choice(len(y), ds["seed_size"], replace=False))
    model = WarmLR(n_classes, ds["C"])
    curve = []
    r = 0
    while True:
        model.fit(X[labeled], y[labeled])
        acc = float((model.predict_proba(ds["Xte"]).argmax(1) == ds["yte"]).mean())
        curve.append((int(labeled.size), acc))
        if labeled.size >= max_labels:
            return curve
        cand = np.setdiff1d(np.arange(len(y)), labeled)
        k = min(batch, max_labels - labeled.size)
        picked = select(strategy, model, X, cand, k, rng_for(seed, "select", r), chunk_size=65536,
                        context=SelectContext(labeled=labeled, seconds=None))
        labeled = np.sort(np.concatenate([labeled, picked]))
        r += 1


def full_accuracy(ds: dict[str, Any]) -> float:
    n_classes = int(max(ds["y"].max(), ds["yte"].max()) + 1)
    model = WarmLR(n_classes, ds["C"], max_iter=500).fit(ds["X"], ds["y"])
    return float((model.predict_proba(ds["Xte"]).argmax(1) == ds["yte"]).mean())
