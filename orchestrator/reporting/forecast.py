"""Forecast: how many more labels, human hours and money a loop needs to reach a target metric.

An ensemble of learning curves is fitted to the rounds so far (``metric(n)`` at ``n`` labels; the
families are in :mod:`clicloop.orchestrator.reporting.curves`: the inverse power law
``a - b * n**-c`` and a hyperbola ``a - b / (n + c)`` by default), each family weighted by how
well it, fitted without the last quarter of the rounds, predicts them (Domhan et al. 2015 weigh
their families by fit in the same spirit).

The labels still needed come from a seeded simulation that answers the question the loop's
target rule asks, "when will a round's *measured* metric first reach the target?": each of
``n_boot`` futures draws a family by its weight, refits it to its fitted values plus resampled
residuals (residual bootstrap: the curve's own uncertainty), then simulates future rounds (the
loop's recent labels per round, the metric measured with noise: the fit's residual noise times
``NOISE_SCALE``) until the first measurement reaches the target; no forecast goes past the
unlabeled pool (``pool_left``). The point forecast is the median over futures, the interval their
central ``level`` (80%); "unreachable" when most futures never get there, or when even the upper
end of the plateau's interval (the futures' asymptotes) is below the target: "not reachable with
this model and pool", with the plateau shown. The families and ``NOISE_SCALE`` were chosen on
calibration loops the benchmark does not score. Labels are turned into hours and money at the
loop's own rate (human hours with unpaid time, and money with fees, per label: the median of the
last 3 rounds' rates, so one round of one-off work does not set it), less what the latest round
already bought. benchmarks/forecast_error.py measures the error.

    from clicloop.orchestrator.reporting.forecast import forecast
    rows, totals = build_report(ledger, loop)     # clicloop.orchestrator.reporting.report
    fc = forecast(rows, target=0.93)
    fc.hours_to_target.point, fc.hours_to_target.low, fc.hours_to_target.high
    fc.beyond(hours_left=10.0)                    # the stopping rule: the target is out of reach

The fit is numpy only (least squares profiled over a grid of each family's nonlinear parameter).
"""

from __future__ import annotations

import math
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
# The ensemble's curve families and the simulated rounds' measurement noise (in units of the fit's
# residual noise): chosen on calibration loops that the benchmark never scores (digits seeds
# 10-19 and SNIPS; benchmarks/forecast_error.py --tune, docs/benchmarks/log.md 2026-12-05).
FAMILIES = ("power", "mmf")
NOISE_SCALE = 1.5
WIDEN = 1.5  # the futures' spread around their median, in log labels: > 1 widens every interval


@dataclass(frozen=True)
class Interval:
    """A forecast quantity: ``point`` and the bootstrap interval ``[low, high]`` (``inf`` when
    the fitted curve never reaches the target)."""

    point: float
    low: float
    high: float


@dataclass(frozen=True)
class Marginal:
    """The next point's cost from the fitted curve: labels, human hours, money (an estimate);
    ``curve_now`` the curve at the current labels and ``plateau`` where it levels off (the labels
    are infinite when ``curve_now + 0.01`` is above it)."""

    labels: float
    hours: float
    cost: float
    curve_now: float = math.nan
    plateau: float = math.nan


@dataclass(frozen=True)
class Forecast:
    """What reaching ``target`` still takes, forecast from ``rounds_used`` rounds.

    ``status``: ``reached`` (the latest model already meets the target), ``forecast``,
    ``unreachable`` (the fitted curve levels off below the target) or ``too-few-rounds``.
    ``labels_to_target`` / ``hours_to_target`` / ``cost_to_target`` count what is still to be
    bought beyond what the ledger already records; ``None`` unless status is ``forecast`` or
    ``unreachable``. ``model`` is the heaviest curve family of the ensemble and ``params`` its
    ``(a, b, theta)`` fitted to every round (``a`` the plateau; see
    :mod:`clicloop.orchestrator.reporting.curves`).
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
    plateau: Interval | None = None  # where the fitted curves level off (the simulated futures' asymptotes)
    pool_left: int | None = None  # unlabeled items left: no forecast goes past them

    def predict(self, n: Any) -> np.ndarray:
        """The fitted curve at ``n`` labels (NaN without a fit)."""
        x = np.asarray(n, dtype=float)
        if self.params is None or self.model is None:
            return np.full(x.shape, np.nan)
        from clicloop.orchestrator.reporting.curves import curve

        return curve(self.model, np.maximum(x, 1.0), *self.params)

    def marginal(self) -> Marginal | None:
        """What the NEXT point (0.01 of the metric) costs from the fitted curve (so rounds without a
        measured gain count, unlike per-round ratios): the labels that take the curve from its value
        at the current labels to 0.01 higher, turned into hours and money at the loop's recent
        rate; ``inf`` everywhere when that is above the curve's plateau. None without a fit."""
        if self.params is None or self.model is None or self.hours_per_label is None or self.cost_per_label is None:
            return None
        n = max(float(self.labels_now), 1.0)
        aim = float(self.predict(n)) + 0.01
        from clicloop.orchestrator.reporting.curves import labels_at

        reach = labels_at(self.model, self.params, aim)
        labels = max(0.0, reach - n) if math.isfinite(reach) else math.inf
        return Marginal(labels, labels * self.hours_per_label, labels * self.cost_per_label, aim - 0.01, float(self.params[0]))

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


def check_target(target: float | None) -> None:
    """A forecast target someone asked for (``report --target``, the dashboard's ``target``) is
    a metric above 0 and at most 1."""
    if target is not None and not (math.isfinite(target) and 0 < target <= 1):
        raise ConfigError(f"{target}: give a number above 0 and at most 1", field="target")


def forecast(rounds_rows: Sequence[Any], target: float, *, seed: int = 0, n_boot: int = BOOTSTRAP,
             level: float = LEVEL, pool_left: int | None = None, families: Sequence[str] = FAMILIES,
             noise_scale: float = NOISE_SCALE, widen: float = WIDEN) -> Forecast:
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
    hpl = _rate(hours[first:last], np.diff(n[first : last + 1])) if bought_labels > 0 else None
    cpl = _rate(cost[first:last], np.diff(n[first : last + 1])) if bought_labels > 0 else None
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
    step = float(np.median(np.diff(x)[-RATE_ROUNDS:]))  # labels a round adds, lately
    rng = np.random.default_rng(seed)
    model, params, sims, plateaus = _ensemble(x, y, float(labels_now), step, target, n_boot, rng, tuple(families), noise_scale)
    sims = _widen(sims, widen)
    reachable = bool(np.isfinite(np.median(sims)))
    if pool_left is not None:
        sims = np.where(sims > pool_left, np.inf, sims)
    tail = (1 - level) / 2
    point, low, high = (float(v) for v in np.quantile(sims, [0.5, tail, 1 - tail], method="inverted_cdf"))
    plateau = Interval(*(float(v) for v in np.quantile(plateaus, [0.5, tail, 1 - tail], method="inverted_cdf")))
    if plateau.high < target:  # even the optimistic plateau stays below the target
        point = low = high = math.inf
    labels = Interval(point, low, high)

    bought = np.diff(n[first : last + 1])

    def spend(spent: np.ndarray, rate: float, pending: float) -> Interval:
        """Labels at the loop's rate, less what is bought already; the interval also carries the
        rate's own uncertainty (each future at a bootstrap mean of the recent rounds' rates)."""
        if not math.isfinite(point):
            return Interval(math.inf, math.inf, math.inf)
        mid = max(0.0, point * rate - pending)
        rates = _rate_draws(spent, bought, sims.size, rng) if RATE_SPREAD else np.full(sims.size, rate)
        lo, hi = (float(v) for v in np.quantile(np.maximum(sims * rates - pending, 0.0), [tail, 1 - tail], method="inverted_cdf"))
        return Interval(mid, min(lo, mid), max(hi, mid))

    status = "forecast" if math.isfinite(point) else "unreachable"
    return Forecast(status=status, model=model, params=tuple(float(v) for v in params), labels_to_target=labels,
                    hours_to_target=spend(hours[first:last], hpl, pending_h),
                    cost_to_target=spend(cost[first:last], cpl, pending_c),
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
    return f"in most simulated futures the measured rounds never reach the target {target:.4f} ({levels_off})"


RATE_SPREAD = True


def _widen(sims: np.ndarray, factor: float) -> np.ndarray:
    """The simulated futures spread ``factor`` times as far from their median in log labels (the
    median, and so the point forecast, stays); futures that never reach the target stay so."""
    finite = np.isfinite(sims)
    if factor == 1.0 or not finite.any():
        return sims
    mid = float(np.quantile(sims, 0.5, method="inverted_cdf"))
    if not math.isfinite(mid):
        mid = float(np.median(sims[finite]))
    out = sims.copy()
    out[finite] = mid * np.power(sims[finite] / mid, factor)
    return out


def _rate_draws(spent: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` bootstrap means of the recent rounds' per-label rates (the rate's uncertainty)."""
    ok = labels > 0
    rates = spent[ok] / labels[ok]
    return rates[rng.integers(0, rates.size, (size, rates.size))].mean(axis=1)


def _rate(spent: np.ndarray, labels: np.ndarray) -> float:
    """Money or hours per label over recent rounds: the median of the rounds' own rates (a round
    of one-off work, e.g. a qualification test, does not set the rate)."""
    ok = labels > 0
    return float(np.median(spent[ok] / labels[ok])) if ok.any() else float(spent.sum() / max(labels.sum(), 1.0))


def _ensemble(x: np.ndarray, y: np.ndarray, n_now: float, step: float, target: float, n_boot: int,
              rng: np.random.Generator, families: tuple[str, ...],
              noise_scale: float) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Labels still needed, ``n_boot`` simulated futures: each draws a curve family by its
    held-out weight (:func:`clicloop.orchestrator.reporting.curves.held_out_weights`), refits it to
    the fit plus resampled residuals (residual bootstrap: the curve's own uncertainty), then
    simulates future rounds (``step`` more labels each, the metric measured with the fit's
    residual noise) until the first measured metric reaches ``target``, as the loop's target rule
    would see it; inf if not within ``HORIZON`` rounds. Returns the heaviest family, its fit to
    all rounds, the labels needed per future, and each future's plateau."""
    from clicloop.orchestrator.reporting import curves

    unknown = [m for m in families if m not in curves.FAMILIES]
    if unknown or not families:
        raise ConfigError(f"families={list(families)}: use some of {', '.join(curves.FAMILIES)}", field="families")
    full = {m: curves.fit(m, x[None, :], y[None, :]) for m in families}
    dof = max(1, x.size - 3)
    best_sse = min(float(f[3][0]) for f in full.values())
    sigma = math.sqrt(best_sse / dof)
    weights = curves.held_out_weights(x, y, sigma, families)
    model = max(weights, key=weights.__getitem__)
    counts = rng.multinomial(n_boot, [weights[m] for m in families])
    future = n_now + step * np.arange(1, HORIZON + 1)
    sims, plateaus = [], []
    for m, count in zip(families, counts):
        if count == 0:
            continue
        a, b, t, sse = (float(v[0]) for v in full[m])
        fitted = curves.curve(m, x, a, b, t)
        resid = (y - fitted) * math.sqrt(x.size / dof)
        ystar = fitted + resid[rng.integers(0, x.size, (count, x.size))]
        ra, rb, rt, _ = curves.fit(m, np.broadcast_to(x, ystar.shape), ystar)
        noise = rng.normal(0.0, sigma * noise_scale, (count, HORIZON))
        observed = curves.curve(m, future[None, :], ra[:, None], rb[:, None], rt[:, None]) + noise
        hit = observed >= target
        sims.append(np.where(hit.any(axis=1), (hit.argmax(axis=1) + 1) * step, np.inf))
        plateaus.append(ra)
    params = np.array([float(v[0]) for v in full[model][:3]])
    return model, params, np.concatenate(sims), np.concatenate(plateaus)


def default_target(configured: float | None, best: float | None) -> float:
    """The target a forecast aims at when none is given: the loop's ``stop.target_metric``, else
    the best metric so far (of the loops in view: one target they all compare on) rounded up to a
    whole point, plus 2 points, capped at 0.99: 0.93 -> 0.95, 0.9555 -> 0.98."""
    if configured is not None:
        return float(configured)
    points = math.ceil(round((best or 0.0) * 100, 6))  # 0.93 * 100 is 93.00000000000001 in floats
    return min(0.99, round((points + 2) / 100, 2))


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
