"""Learning-curve families for the forecast, fitted many samples at once.

Every family is ``metric(n) = a - b * u(n; theta)`` with ``u`` falling towards 0 as the labels
``n`` grow, so ``a`` is the plateau: for a fixed ``theta`` the curve is linear in ``a`` and ``b``,
and least squares is profiled over a grid of ``theta`` (Domhan et al. 2015 use such families;
these are the ones with a single nonlinear parameter):

- ``power``: ``u = n**-theta`` (pow3, the inverse power law);
- ``exp``: ``u = exp(-theta * n)`` (exp3);
- ``mmf``: ``u = 1 / (n + theta)`` (Morgan-Mercer-Flodin with its shape fixed at 1, a hyperbola);

The fit keeps ``0 <= a <= 1`` (a metric in [0, 1]) and ``b >= 0`` (a rising curve).
:func:`held_out_weights` weighs the families by how well each, fitted without the last rounds,
predicts them (the forecast's ensemble).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


TEMPER = 1.0


@dataclass(frozen=True)
class Family:
    """``u(n, theta)``, its inverse in ``n`` and the ``theta`` grid the fit profiles over."""

    basis: Callable[[np.ndarray, np.ndarray], np.ndarray]
    inverse: Callable[[float, float], float]
    grid: np.ndarray
    levels_off: bool = True  # False: ``a`` is held at 1 (the error falls towards 0, no plateau below it)


def _safe_log(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


FAMILIES: dict[str, Family] = {
    "power": Family(lambda n, t: np.power(n, -t), lambda u, t: u ** (-1 / t) if u > 0 else math.inf, np.geomspace(0.01, 3.0, 120)),
    "exp": Family(lambda n, t: np.exp(-t * n), lambda u, t: -_safe_log(u) / t, np.geomspace(1e-5, 0.5, 120)),
    "mmf": Family(lambda n, t: 1.0 / (n + t), lambda u, t: 1.0 / u - t if u > 0 else math.inf, np.geomspace(0.5, 1e5, 120)),
    "pow2": Family(lambda n, t: np.power(n, -t), lambda u, t: u ** (-1 / t) if u > 0 else math.inf, np.geomspace(0.01, 3.0, 120),
                   levels_off=False),
}


def curve(model: str, n: np.ndarray, a: float, b: float, theta: float) -> np.ndarray:
    """The family ``model``'s curve at ``n`` labels."""
    return a - b * FAMILIES[model].basis(np.asarray(n, dtype=float), np.asarray(theta, dtype=float))


def labels_at(model: str, params: tuple[float, ...], metric: float) -> float:
    """Labels at which the curve reaches ``metric``; inf at or above its plateau."""
    a, b, theta = params
    if not (a > metric and b > 0):
        return math.inf
    return max(0.0, FAMILIES[model].inverse((a - metric) / b, theta))


def fit(model: str, x: np.ndarray, y: np.ndarray, chunk: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of the family ``model`` for every row of ``x``/``y`` (samples x points).
    Returns ``a, b, theta`` and the residual sum of squares, one per row."""
    outs = [_fit_chunk(FAMILIES[model], x[i : i + chunk], y[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
    return tuple(np.concatenate([o[j] for o in outs]) for j in range(4))  # type: ignore[return-value]


def _fit_chunk(family: Family, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The coarse grid, then a finer one between the best point's neighbours."""
    coarse = np.broadcast_to(family.grid, (x.shape[0], family.grid.size))
    a, b, t, sse, best = _profile(family, x, y, coarse)
    lo = family.grid[np.maximum(best - 1, 0)]
    hi = family.grid[np.minimum(best + 1, family.grid.size - 1)]
    fine = np.geomspace(lo, hi, 25, axis=-1)
    a2, b2, t2, sse2, _ = _profile(family, x, y, fine)
    better = sse2 < sse
    return np.where(better, a2, a), np.where(better, b2, b), np.where(better, t2, t), np.where(better, sse2, sse)


def _profile(family: Family, x: np.ndarray, y: np.ndarray,
             grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``a - b * u(x; theta)`` for each row and each ``theta`` of its row of
    ``grid`` (samples x grid); the best per row: ``a, b, theta, sse`` and its grid index."""
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        u = family.basis(x[:, None, :], grid[:, :, None])  # samples x grid x points
    u = np.nan_to_num(u, nan=0.0, posinf=0.0)
    yy = np.broadcast_to(y[:, None, :], u.shape)
    um, ym = u.mean(-1, keepdims=True), yy.mean(-1, keepdims=True)
    var = ((u - um) ** 2).sum(-1)
    b = np.where(var > 1e-300, -((u - um) * (yy - ym)).sum(-1) / np.where(var > 1e-300, var, 1.0), 0.0)
    b = np.maximum(b, 0.0)
    a = ym[..., 0] + b * um[..., 0]
    over = (a > 1.0) | (not family.levels_off)  # the metric cannot exceed 1: refit b with a = 1
    b_fixed = np.maximum(((1.0 - yy) * u).sum(-1) / np.maximum((u * u).sum(-1), 1e-300), 0.0)
    a, b = np.where(over, 1.0, np.maximum(a, 0.0)), np.where(over, b_fixed, b)
    sse = ((yy - (a[..., None] - b[..., None] * u)) ** 2).sum(-1)
    best = sse.argmin(-1)
    pick = np.arange(x.shape[0])
    return a[pick, best], b[pick, best], grid[pick, best], sse[pick, best], best


def held_out_weights(x: np.ndarray, y: np.ndarray, sigma: float, models: tuple[str, ...] | None = None) -> dict[str, float]:
    """Each family's weight: fitted to all but the last quarter of the rounds (at least 2 held
    out, at least 3 kept), its squared error on the held-out rounds, in units of the measurement
    noise ``sigma``, turned into ``exp(-sse / (2 sigma**2))`` and normalised. Equal weights when
    too few rounds to hold any out."""
    models = tuple(FAMILIES) if models is None else models
    hold = max(2, x.size // 4)
    if x.size - hold < 3:
        return {m: 1.0 / len(models) for m in models}
    errs = {}
    for m in models:
        a, b, t, _ = fit(m, x[None, :-hold], y[None, :-hold])
        errs[m] = float(((y[-hold:] - curve(m, x[-hold:], a[0], b[0], t[0])) ** 2).sum())
    best = min(errs.values())
    scale = 2 * max(sigma, 1e-6) ** 2 * hold * TEMPER
    raw = {m: math.exp(-(e - best) / scale) for m, e in errs.items()}
    total = sum(raw.values())
    return {m: v / total for m, v in raw.items()}
