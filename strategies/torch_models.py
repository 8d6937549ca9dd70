"""A torch classifier with Monte-Carlo dropout, and BALD on its samples.

- MC dropout: Y. Gal and Z. Ghahramani, "Dropout as a Bayesian Approximation: Representing Model
  Uncertainty in Deep Learning", ICML 2016.
- BALD: N. Houlsby, F. Huszar, Z. Ghahramani and M. Lengyel, "Bayesian Active Learning for
  Classification and Preference Learning", arXiv:1112.5745, 2011; with MC dropout: Y. Gal,
  R. Islam and Z. Ghahramani, "Deep Bayesian Active Learning with Image Data", ICML 2017.

torch is imported inside the methods; dropout masks are drawn from a seeded ``torch.Generator``
(never torch's global generator), so fits and samples repeat exactly on CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clicloop.orchestrator.types import Model


def bald(samples: np.ndarray) -> np.ndarray:
    """Mutual information between the label and the weights: ``H[mean_t p_t] - mean_t H[p_t]``
    for ``samples`` of shape (T, n, c)."""
    def h(p: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -(np.where(p > 0, p * np.log(p), 0.0)).sum(axis=-1)

    return np.maximum(h(samples.mean(axis=0)) - h(samples).mean(axis=0), 0.0)


class MCDropoutMLP:
    """An MLP (``hidden=0``: a linear head) over numeric features or embeddings, trained with
    Adam and dropout on the input of each layer; CPU, or CUDA when ``device="auto"`` finds one."""

    def __init__(self, hidden: int = 256, dropout: float = 0.3, epochs: int = 100, lr: float = 3e-3,
                 weight_decay: float = 1e-4, batch_size: int = 128, seed: int = 0, device: str = "cpu"):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    def clicloop_provides(self) -> set[str]:
        return {"predict_proba", "predict_proba_samples"} if self.dropout > 0 else {"predict_proba"}

    def fit(self, X: Any, y: Any) -> MCDropoutMLP:
        import torch

        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        X = np.asarray(X, dtype=np.float32)
        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        from sklearn.preprocessing import StandardScaler

        # a feature constant on the labeled items keeps scale 1 (StandardScaler's rule): dividing by
        # ~0 would blow up every later item that differs there (measured: margin stuck at 0.90 on digits)
        scaler = StandardScaler().fit(X)
        self.mean_, self.scale_ = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)
        dev = self._device()
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        sizes = [X.shape[1], self.hidden, len(self.classes_)] if self.hidden else [X.shape[1], len(self.classes_)]
        self.layers_ = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            w = (torch.randn(a, b, generator=g) * (2.0 / a) ** 0.5).to(dev).requires_grad_()
            self.layers_.append((w, torch.zeros(b, device=dev, requires_grad=True)))
        params = [p for layer in self.layers_ for p in layer]
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        Xt = torch.from_numpy((X - self.mean_) / self.scale_).to(dev)
        yt = torch.from_numpy(yi.astype(np.int64)).to(dev)
        for _ in range(self.epochs):
            order = torch.randperm(len(yt), generator=g).to(dev)
            for s in range(0, len(yt), self.batch_size):
                b = order[s : s + self.batch_size]
                loss = torch.nn.functional.cross_entropy(self._forward(Xt[b], g), yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self

    def _device(self) -> str:
        import torch

        return ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device

    def _forward(self, x: Any, g: Any | None) -> Any:
        import torch

        for j, (w, b) in enumerate(self.layers_):
            if g is not None and self.dropout > 0:
                keep = torch.bernoulli(torch.full(x.shape, 1.0 - self.dropout), generator=g).to(x.device)
                x = x * keep / (1.0 - self.dropout)
            x = x @ w + b
            if j < len(self.layers_) - 1:
                x = torch.relu(x)
        return x

    def _proba(self, X: Any, g: Any | None) -> np.ndarray:
        import torch

        x = torch.from_numpy((np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_).to(self.layers_[0][0].device)
        with torch.no_grad():
            return torch.softmax(self._forward(x, g), dim=1).cpu().numpy().astype(np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._proba(X, None)

    def predict_proba_samples(self, X: Any, n_samples: int, rng: np.random.Generator, block: int = 256) -> np.ndarray:
        """(n_samples, n, c) class probabilities with dropout on. Masks come from ``rng``, drawn
        row after row, so scoring a pool in chunks of any size gives the same samples."""
        import torch

        if self.dropout <= 0:
            raise ValueError("MC dropout samples need dropout > 0")
        X = np.asarray(X, dtype=np.float32)
        widths = [w.shape[0] for w, _ in self.layers_]
        keep = 1.0 - self.dropout
        out = np.empty((n_samples, X.shape[0], len(self.classes_)))
        dev = self.layers_[0][0].device
        for s in range(0, X.shape[0], block):
            xb = (X[s : s + block] - self.mean_) / self.scale_
            masks = rng.random((xb.shape[0], n_samples, sum(widths))) < keep  # (rows, T, all layer inputs)
            h = torch.from_numpy(np.repeat(xb[:, None, :], n_samples, axis=1)).to(dev)
            offset = 0
            with torch.no_grad():
                for j, (w, b) in enumerate(self.layers_):
                    m = torch.from_numpy(masks[:, :, offset : offset + widths[j]].astype(np.float32) / keep).to(dev)
                    offset += widths[j]
                    h = (h * m) @ w + b
                    if j < len(self.layers_) - 1:
                        h = torch.relu(h)
                out[:, s : s + xb.shape[0]] = torch.softmax(h, dim=2).cpu().numpy().transpose(1, 0, 2)
        return out


class BALD:
    """BALD with MC dropout (Houlsby et al. 2011; Gal et al. 2017): the items whose label would
    tell the most about the model's weights. Needs a model with ``predict_proba_samples``."""

    requires: tuple[str, ...] = ("predict_proba_samples",)

    def __init__(self, n_samples: int = 20):
        if n_samples < 2:
            raise ValueError(f"BALD needs at least 2 dropout samples, got n_samples={n_samples}")
        self.n_samples = n_samples

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray:
        if model is None or not hasattr(model, "predict_proba_samples"):
            raise ValueError("BALD needs a model with MC dropout (model: mc-dropout-mlp)")
        return bald(np.asarray(model.predict_proba_samples(X, self.n_samples, rng)))

    def __repr__(self) -> str:
        return f"BALD(n_samples={self.n_samples})"
