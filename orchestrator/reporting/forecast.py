"""Forecast: how many more labels, human hours and money a loop needs to reach a target metric.

A learning curve ``metric(n) = a - b * n**(-c)`` (inverse power law in the number of labels
``n``) is fitted to the rounds so far: least squares profiled over a grid of ``c`` (for a fixed
``c`` the curve is linear in ``a`` and ``b``), refined with ``scipy.optimize.curve_fit``; a
log-linear curve ``metric = a + b * log(n)`` stands in when the power law cannot be fitted.

The labels still needed come from a seeded simulation that answers the question the loop's
target rule asks, "when will a round's *measured* metric first reach the target?": rounds are
resampled with replacement (bootstrap), the curve is refitted to each resample, and future
rounds are simulated from it (the loop's recent labels per round, the metric measured with the
fit's residual noise) until the first measurement reaches the target; no forecast goes past the
unlabeled pool (``pool_left``). The point forecast is the median over resamples, the
interval their central ``level`` (80%); "unreachable" when most resamples never get there, or
when even the upper end of the plateau's interval (the resamples' asymptotes) is below the
target: "not reachable with this model and pool", with the plateau shown. Labels are turned into hours and money at the loop's own rate (human
hours with unpaid time, and money with fees, per label over the last 3 rounds), less what the
latest round already bought. benchmarks/forecast_error.py measures the error.

    from clicloop.orchestrator.reporting.forecast import forecast
    rows, totals = build_report(ledger, loop)     # clicloop.orchestrator.reporting.report
    fc = forecast(rows, target=0.93)
    fc.hours_to_target.point, fc.hours_to_target.low, fc.hours_to_target.high
    fc.beyond(hours_left=10.0)                    # the stopping rule: the target is out of reach

scipy is imported inside the fit, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import ConfigError

MIN_ROUNDS = 3
BOOTSTRAP = 200
LEVEL = 0.8
RATE_ROUNDS = 3
HORIZON = 1000  # future rounds simulated before a target counts as out of reach


@dataclass(frozen=True)
class Interval:
    """A forecast quantity: ``point`` and the bootstrap interval ``[low, high]`` (``inf`` when
    the fitted curve never reaches the target)."""

    point: float
    low: float
    high: float


@dataclass(frozen=True)
class Marginal:
    """The next point's cost from the fitted curve: labels, human hours, money (an estimate)."""

    labels: float
    hours: float
    cost: float


@dataclass(frozen=True)
class Forecast:
    """What reaching ``target`` still takes, forecast from ``rounds_used`` rounds.

    ``status``: ``reached`` (the latest model already meets the target), ``forecast``,
    ``unreachable`` (the fitted curve levels off below the target) or ``too-few-rounds``.
    ``labels_to_target`` / ``hours_to_target`` / ``cost_to_target`` count what is still to be
    bought beyond what the ledger already records; ``None`` unless status is ``forecast`` or
    ``unreachable``. ``params`` are ``(a, b, c)`` of ``a - b * n**-c`` (``model="power"``) or
    ``(a, b)`` of ``a + b * log(n)`` (``model="loglinear"``).
    """

    target: float
    status: str
    rounds_used: int
    labels_now: int
    metric_now: float | None
    hours_spent: float
    cost_spent: float
    hours_per_label: float | None
    cost_per_label: float | None
    model: str | None
    params: tuple[float, ...] | None
    labels_to_target: Interval | None
    hours_to_target: Interval | None
    cost_to_target: Interval | None
    level: float
    message: str
    plateau: Interval | None = None  # where the fitted curve levels off (the resamples' asymptotes)
    pool_left: int | None = None  # unlabeled items left: no forecast goes past them

    def predict(self, n: Any) -> np.ndarray:
        """The fitted curve at ``n`` labels (NaN without a fit)."""
        x = np.asarray(n, dtype=float)
        if self.params is None or self.model is None:
            return np.full(x.shape, np.nan)
        return _curve(self.model)(np.maximum(x, 1.0), *self.params)

    def marginal(self) -> Marginal | None:
        """What the NEXT point (0.01 of the metric) costs from the fitted curve (so rounds without a
        measured gain count, unlike per-round ratios): the labels that take the curve from its value
        at the current labels to 0.01 higher, turned into hours and money at the loop's recent
        rate; ``inf`` everywhere when that is above the curve's plateau. None without a fit."""
        if self.params is None or self.model is None or self.hours_per_label is None or self.cost_per_label is None:
            return None
        n = max(float(self.labels_now), 1.0)
        aim = float(self.predict(n)) + 0.01
        if self.model == "power":
            a, b, c = self.params
            reach = (b / (a - aim)) ** (1 / c) if a > aim and b > 0 and c > 0 else math.inf
        else:
            a, b = self.params
            reach = math.exp((aim - a) / b) if b > 0 else math.inf
        labels = max(0.0, reach - n) if math.isfinite(reach) else math.inf
        return Marginal(labels, labels * self.hours_per_label, labels * self.cost_per_label)

    def beyond(self, *, hours_left: float | None = None, cost_left: float | None = None, conservative: bool = True) -> bool:
        """The stopping rule: True when reaching the target needs more than the remaining budget.

        ``conservative`` compares the LOW end of the interval (stop only when even the optimistic
        forecast is over budget); otherwise the point forecast. False when reached or unknown."""
        if self.status not in ("forecast", "unreachable"):
            return False
        for need, left in ((self.hours_to_target, hours_left), (self.cost_to_target, cost_left)):
            if need is not None and left is not None and (need.low if conservative else need.point) > left:
                return True
        return False


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def forecast(rounds_rows: Sequence[Any], target: float, *, seed: int = 0, n_boot: int = BOOTSTRAP,
             level: float = LEVEL, pool_left: int | None = None) -> Forecast:
    """Forecast the labels, human hours and money still needed to reach ``target``.

    ``rounds_rows``: one loop's rounds in order, as ``clicloop.orchestrator.reporting.report.ReportRow`` objects or
    mappings with ``n_labeled`` (labels the round's model was trained on), ``metric`` (its
    evaluation, may be None), ``total_hours`` and ``cost`` (what the round bought after fitting
    its model: human hours with unpaid time, and money with fees). Rounds without a metric are
    ignored for the fit. Randomness (the bootstrap) comes from ``np.random.default_rng(seed)``;
    the interval is the central ``level`` of ``n_boot`` refits. ``pool_left``: the unlabeled
    items left; a target that needs more labels than that is unreachable.
    """
    if not 0 < level < 1:
        raise ConfigError(f"level={level} must be between 0 and 1", field="level")
    rows = list(rounds_rows)
    n = np.array([float(_get(x, "n_labeled")) for x in rows])
    metric = np.array([np.nan if _get(x, "metric") is None else float(_get(x, "metric")) for x in rows])
    hours = np.array([float(_get(x, "total_hours") or 0.0) for x in rows])
    cost = np.array([float(_get(x, "cost") or 0.0) for x in rows])
    ok = np.isfinite(metric) & (n > 0)
    base = dict(target=float(target), rounds_used=int(ok.sum()), hours_spent=float(hours.sum()), cost_spent=float(cost.sum()),
                level=level, pool_left=pool_left)
    if not ok.any():
        return Forecast(status="too-few-rounds", labels_now=int(n[-1]) if n.size else 0, metric_now=None, hours_per_label=None,
                        cost_per_label=None, model=None, params=None, labels_to_target=None, hours_to_target=None,
                        cost_to_target=None, message="no evaluated round yet", **base)
    last = int(np.flatnonzero(ok)[-1])
    labels_now, metric_now = int(n[last]), float(metric[last])
    # the loop's current rate: hours and money per label over the last RATE_ROUNDS rounds whose
    # labels reached a model (one-off costs of the first rounds, e.g. qualification tests, fade out)
    first = max(int(np.flatnonzero(ok)[0]), last - RATE_ROUNDS)
    bought_labels = n[last] - n[first]
    hpl = float(hours[first:last].sum() / bought_labels) if bought_labels > 0 else None
    cpl = float(cost[first:last].sum() / bought_labels) if bought_labels > 0 else None
    pending_h, pending_c = float(hours[last:].sum()), float(cost[last:].sum())  # bought, not yet in a model
    common = dict(labels_now=labels_now, metric_now=metric_now, hours_per_label=hpl, cost_per_label=cpl, **base)
    if metric_now >= target:
        zero = Interval(0.0, 0.0, 0.0)
        return Forecast(status="reached", model=None, params=None, labels_to_target=zero, hours_to_target=zero,
                        cost_to_target=zero, message=f"the latest model ({metric_now:.4f}) meets the target {target:.4f}", **common)
    x, y = n[ok], metric[ok]
    if np.unique(x).size < MIN_ROUNDS or hpl is None or cpl is None:
        return Forecast(status="too-few-rounds", model=None, params=None, labels_to_target=None, hours_to_target=None,
                        cost_to_target=None, message=f"needs {MIN_ROUNDS} evaluated rounds with labels bought; has {np.unique(x).size}",
                        **common)
    model, params = _fit(x, y)
    residual = y - _curve(model)(x, *params)
    sigma = float(np.sqrt((residual**2).sum() / max(1, x.size - len(params))))
    step = float(np.median(np.diff(x)[-RATE_ROUNDS:]))  # labels a round adds, lately
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, x.size, (n_boot, x.size))
    sims, plateaus = _simulate(x[picks], y[picks], float(labels_now), step, sigma, target, rng)
    reachable = bool(np.isfinite(np.median(sims)))
    if pool_left is not None:
        sims = np.where(sims > pool_left, np.inf, sims)
    tail = (1 - level) / 2
    point, low, high = (float(v) for v in np.quantile(sims, [0.5, tail, 1 - tail], method="inverted_cdf"))
    plateau = Interval(*(float(v) for v in np.quantile(plateaus, [0.5, tail, 1 - tail], method="inverted_cdf")))
    if plateau.high < target:  # even the optimistic plateau stays below the target
        point = low = high = math.inf
    labels = Interval(point, low, high)

    def spend(rate: float, pending: float) -> Interval:
        return Interval(*(max(0.0, v * rate - pending) if math.isfinite(v) else math.inf for v in (labels.point, labels.low, labels.high)))

    status = "forecast" if math.isfinite(point) else "unreachable"
    return Forecast(status=status, model=model, params=tuple(float(v) for v in params), labels_to_target=labels,
                    hours_to_target=spend(hpl, pending_h), cost_to_target=spend(cpl, pending_c),
                    message=_message(status, labels, plateau, target, level, pool_left, reachable and status == "unreachable"),
                    plateau=plateau, **common)


def _message(status: str, labels: Interval, plateau: Interval, target: float, level: float, pool_left: int | None,
             by_pool: bool) -> str:
    if status == "forecast":
        high = "∞" if math.isinf(labels.high) else f"{labels.high:.0f}"
        return f"about {labels.point:.0f} more labels ({labels.low:.0f}-{high}, {level:.0%} interval)"
    levels_off = f"the fitted curve levels off at {plateau.point:.4f} ({plateau.low:.4f}-{plateau.high:.4f}, {level:.0%} interval)"
    if plateau.high < target:
        return f"not reachable with this model and pool: {levels_off}, below the target {target:.4f}"
    if by_pool:
        return f"not reachable within the {pool_left:,} unlabeled items left ({levels_off})"
    return f"in most resamples the simulated rounds never reach the target {target:.4f} ({levels_off})"


def _curve(model: str) -> Any:
    if model == "power":
        return lambda n, a, b, c: a - b * np.power(n, -c)
    return lambda n, a, b: a + b * np.log(n)


C_GRID = np.geomspace(0.01, 3.0, 160)


def _grid_power(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``a - b * x**-c`` for many samples at once (rows of ``x``/``y``), profiled
    over a grid of ``c`` (for a fixed ``c`` the model is linear in ``a`` and ``b``), with
    ``0 <= a <= 1`` and ``b >= 0``. Returns the best ``a, b, c`` and the residual sum of squares."""
    u = np.power(x[:, None, :], -C_GRID[None, :, None])  # samples x grid x points
    yy = np.broadcast_to(y[:, None, :], u.shape)
    um, ym = u.mean(-1, keepdims=True), yy.mean(-1, keepdims=True)
    var = ((u - um) ** 2).sum(-1)
    b = np.where(var > 0, -((u - um) * (yy - ym)).sum(-1) / np.where(var > 0, var, 1.0), 0.0)
    b = np.maximum(b, 0.0)
    a = ym[..., 0] + b * um[..., 0]
    over = a > 1.0  # the metric cannot exceed 1: refit b with a = 1
    b_fixed = np.maximum(((1.0 - yy) * u).sum(-1) / np.maximum((u * u).sum(-1), 1e-300), 0.0)
    a, b = np.where(over, 1.0, np.maximum(a, 0.0)), np.where(over, b_fixed, b)
    sse = ((yy - (a[..., None] - b[..., None] * u)) ** 2).sum(-1)
    best = sse.argmin(-1)
    pick = np.arange(x.shape[0])
    return a[pick, best], b[pick, best], C_GRID[best], sse[pick, best]


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[str, np.ndarray]:
    """The power law: a grid-profiled start refined by ``scipy.optimize.curve_fit`` (bounded:
    0 <= a <= 1, b >= 0, 0.01 <= c <= 3); the log-linear curve if that fails."""
    from scipy.optimize import OptimizeWarning, curve_fit

    a, b, c, _ = _grid_power(x[None, :], y[None, :])
    start = np.array([min(a[0], 1.0 - 1e-9), b[0], c[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            params, _ = curve_fit(_curve("power"), x, y, p0=start, bounds=([0.0, 0.0, 0.01], [1.0, np.inf, 3.0]), maxfev=2000)
            if np.all(np.isfinite(params)):
                return "power", params
        except (RuntimeError, ValueError):
            pass
    if np.isfinite(start).all():
        return "power", start
    slope, intercept = np.polyfit(np.log(x), y, 1)
    return "loglinear", np.array([intercept, slope])


def _simulate(x: np.ndarray, y: np.ndarray, n_now: float, step: float, sigma: float, target: float,
              rng: np.random.Generator) -> np.ndarray:
    """Labels still needed in each bootstrap resample (rows of ``x``/``y``): the curve refitted
    to the resample, then future rounds simulated (``step`` more labels each, the metric observed
    with the fit's residual noise ``sigma``) until the first observed metric reaches ``target``,
    as the loop's target rule would see it; inf if not within ``HORIZON`` rounds. Also returns
    each resample's asymptote (the plateau)."""
    out, plateaus = [], []
    for i in range(0, x.shape[0], 50):  # bounded memory: 50 resamples x grid x points at a time
        a, b, c, _ = _grid_power(x[i : i + 50], y[i : i + 50])
        distinct = np.array([np.unique(row).size for row in x[i : i + 50]])
        future = n_now + step * np.arange(1, HORIZON + 1)
        observed = a[:, None] - b[:, None] * np.power(future[None, :], -c[:, None]) + rng.normal(0.0, sigma, (a.size, HORIZON))
        hit = observed >= target
        first = np.where(hit.any(axis=1), (hit.argmax(axis=1) + 1) * step, np.inf)
        keep = distinct >= MIN_ROUNDS  # too few distinct label counts to refit: left out
        out.append(first[keep])
        plateaus.append(a[keep])
    sims, levels = np.concatenate(out), np.concatenate(plateaus)
    return (sims, levels) if sims.size else (np.array([np.inf]), np.array([0.0]))


def default_target(configured: float | None, best: float | None) -> float:
    """The target a forecast aims at when none is given: the loop's ``stop.target_metric``, else
    2 points above the best metric so far (capped at 0.99)."""
    if configured is not None:
        return float(configured)
    return min(0.99, math.ceil((best or 0.0) * 100) / 100 + 0.02)


def describe(fc: Forecast, currency: str = "", hours_left: float | None = None, cost_left: float | None = None) -> str:
    """One line for people: what reaching the target still takes, and how it compares with the budget left."""
    head = f"forecast to {fc.target:.4f}"
    if fc.status == "reached":
        return f"{head}: reached ({fc.message})"
    if fc.status == "too-few-rounds":
        return f"{head}: not yet ({fc.message})"
    if fc.status == "unreachable":
        text = f"{head}: out of reach: {fc.message}"
    else:
        def iv(x: Interval | None, spec: str, unit: str = "") -> str:
            if x is None:
                return "-"
            f = lambda v: format(v, spec) if math.isfinite(v) else "∞"  # noqa: E731
            return f"{f(x.point)} {unit}".rstrip() + f" ({f(x.low)}-{f(x.high)})"

        text = (f"{head}: about {iv(fc.labels_to_target, ',.0f', 'more labels')}, {iv(fc.hours_to_target, '.2f', 'human hours')}, "
                f"{iv(fc.cost_to_target, '.2f', currency)}; {fc.level:.0%} interval, fitted to {fc.rounds_used} rounds")
    budget = []
    if hours_left is not None:
        budget.append(f"{hours_left:.2f} h")
    if cost_left is not None:
        budget.append(f"{cost_left:.2f} {currency}".rstrip())
    if budget:
        over = fc.beyond(hours_left=hours_left, cost_left=cost_left)
        text += f"; budget left {' and '.join(budget)}: " + ("over budget even at the optimistic end (stop.forecast would stop)"
                                                           if over else "within reach")
    return text
