"""The fused float32 path for linear softmax models: logits, log-softmax and the uncertainty
score in one pass over each block of rows, with no float64 temporaries and no probability matrix.

A model qualifies when its ``predict_proba`` is ``softmax(X @ W + b)``: scikit-learn's
``LogisticRegression`` (binary: ``sigmoid(z) = softmax([0, z])``), a ``Pipeline`` of
``StandardScaler`` steps ending in one (the scaler is folded into ``W`` and ``b``), or any
object that sets ``linear_softmax_ = True`` next to ``coef_`` and ``intercept_``.
Scores equal the generic path's up to float32 rounding (relative error ~1e-6).

The measures are those of :mod:`clicloop.strategies.scores` (Lewis and Gale 1994; Scheffer et al. 2001;
Settles 2009); the log-sum-exp form follows the usual stable softmax (e.g. Goodfellow, Bengio and
Courville, "Deep Learning", MIT Press 2016, section 4.1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BLOCK = 16384  # rows per fused block: the (classes x rows) logits stay in the CPU cache


def linear_head(model: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(W (d, c) float32, b (c,) float32)`` with ``predict_proba(X) = softmax(X @ W + b)``, or
    None when the model is not (recognisably) a linear softmax model."""
    if not type(model).__module__.startswith("sklearn.") and not getattr(model, "linear_softmax_", False):
        return None  # never import scikit-learn for a model that is not one of its estimators
    steps = getattr(model, "steps", None)
    if steps is not None:
        return _pipeline_head([s for _, s in steps])
    if not _is_linear_softmax(model):
        return None
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.broadcast_to(np.asarray(model.intercept_, dtype=np.float64), (coef.shape[0],))
    if coef.shape[0] == 1 and len(model.classes_) == 2:  # binary: softmax([0, z]) = [1 - sigmoid, sigmoid]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    return np.ascontiguousarray(coef.T, dtype=np.float32), intercept.astype(np.float32)


def _is_linear_softmax(model: Any) -> bool:
    if getattr(model, "linear_softmax_", False):
        return True
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return type(model) is LogisticRegression and hasattr(model, "coef_")


def _pipeline_head(steps: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    from sklearn.preprocessing import StandardScaler

    if not steps or not all(type(s) is StandardScaler for s in steps[:-1]):
        return None
    head = linear_head(steps[-1])
    if head is None:
        return None
    W, b = head[0].astype(np.float64), head[1].astype(np.float64)
    for scaler in reversed(steps[:-1]):  # x' = (x - m) / s  =>  x' W + b = x (W / s) + (b - (m / s) W)
        d = W.shape[0]
        m = np.asarray(scaler.mean_, dtype=np.float64) if scaler.with_mean else np.zeros(d)
        sc = np.asarray(scaler.scale_, dtype=np.float64) if scaler.with_std else np.ones(d)
        b = b - (m / sc) @ W
        W = W / sc[:, None]
    return np.ascontiguousarray(W, dtype=np.float32), b.astype(np.float32)


def fused_scores(X: Any, W: np.ndarray, b: np.ndarray, measure: str) -> np.ndarray:
    """Score rows of ``X`` under ``softmax(X @ W + b)`` with ``measure`` in
    {"margin", "least-confidence", "entropy"}; float32, higher = more informative.

    The product is row-major (``X @ W``, faster in BLAS than ``W.T @ X.T``: the whole kernel
    0.81x at 1M x 64 x 10 on one thread, ``benchmarks/linear_kernel.py``), then transposed into a
    class-major (c, rows) buffer (with the bias added in the same pass), so every reduction over
    classes is an element-wise pass over contiguous rows instead of a short-axis reduction. The
    softmax skips the top-logit shift on blocks where ``exp`` cannot overflow (``_exp_in_place``)."""
    if measure not in _MEASURES:
        raise ValueError(f"no fused path for measure {measure!r}; known: {', '.join(_MEASURES)}")
    n = X.shape[0]
    out = np.empty(n, dtype=np.float32)
    W = np.ascontiguousarray(W, dtype=np.float32)
    bT = np.asarray(b, dtype=np.float32)[:, None]
    rows = np.empty((min(n, BLOCK), W.shape[1]), dtype=np.float32)
    logits = np.empty((W.shape[1], min(n, BLOCK)), dtype=np.float32)
    with one_blas_thread():
        for start in range(0, n, BLOCK):
            block = np.asarray(X[start : start + BLOCK], dtype=np.float32)
            m = block.shape[0]
            Z = logits[:, :m]  # (c, rows), contiguous: the transpose and the bias in one pass
            np.add(np.matmul(block, W, out=rows[:m]).T, bT, out=Z)
            out[start : start + m] = _MEASURES[measure](Z)
    return out


_CONTROLLER: Any = None


def one_blas_thread() -> Any:
    """Each block's product is tiny: BLAS threads only add synchronisation, and on a busy machine
    spinning OpenBLAS threads make it 10-50x slower. Limit BLAS to one thread (threadpoolctl,
    a scikit-learn dependency) while the fused loop runs."""
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def _top_two(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = Z[0].copy()
    second = np.full_like(first, -np.inf)
    lower = np.empty_like(first)
    for z in Z[1:]:
        np.maximum(second, np.minimum(first, z, out=lower), out=second)
        np.maximum(first, z, out=first)
    return first, second


def _exp_in_place(Z: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Z <- exp(Z - s)`` and its sum over classes; returns ``(sum, s)``. The stable softmax
    subtracts the top logit (``s = first``); where every top logit of the block lies well inside
    float32's range for ``exp`` (no term overflows, no row's sum underflows to 0), ``s = 0`` gives
    the same probabilities and saves a pass over the block."""
    bound = 80.0 - np.log(Z.shape[0])  # c * e^bound < float32's max; e^-80 is a normal float32
    if -80.0 < first.min() and first.max() < bound:
        shift = np.zeros(1, dtype=np.float32)
    else:
        shift = first.copy()  # a copy: callers shift ``first`` itself by it
        Z -= shift
    np.exp(Z, out=Z)
    return np.add.reduce(Z, axis=0), shift


def _margin(Z: np.ndarray) -> np.ndarray:
    if Z.shape[0] < 2:
        return np.zeros(Z.shape[1], dtype=np.float32)
    first, second = _top_two(Z)
    total, shift = _exp_in_place(Z, first)
    first -= shift
    second -= shift
    np.exp(first, out=first)
    np.exp(second, out=second)
    first -= second
    first /= total
    return 1.0 - first  # 1 - (p1 - p2), p = e^(z - s) / sum e^(z - s)


def _least_confidence(Z: np.ndarray) -> np.ndarray:
    first = Z.max(axis=0)
    total, shift = _exp_in_place(Z, first)
    first -= shift
    np.exp(first, out=first)
    first /= total
    return 1.0 - first


def _entropy(Z: np.ndarray) -> np.ndarray:
    Z -= Z.max(axis=0)
    E = np.exp(Z)
    total = E.sum(axis=0)
    np.multiply(E, Z, out=E)  # H = log S - sum(e^z z) / S
    return np.log(total) - E.sum(axis=0) / total


_MEASURES = {"margin": _margin, "least-confidence": _least_confidence, "entropy": _entropy}
