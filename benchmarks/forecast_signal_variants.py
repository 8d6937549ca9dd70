"""Forecasts that read the loop's pool signals, scored beside the product's on the loops
``forecast_signals.py`` cached (issue #22; benchmark only, nothing here is product code).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/forecast_signal_variants.py --cache /tmp/fs-cal \\
        --data digits:400:10 --seeds 10-19 --configs margin,default

Variants (each the product's forecast with one thing changed, for the duration of its scoring):

- ``map-S``: the metric replaced by a linear map of the signal ``S`` (``metric ~ alpha + beta * S``,
  least squares on the rounds so far; the families fitted to the mapped signal, i.e. to the signal),
  the simulated rounds' measurement noise the metric's residual around the map (times the noise
  scale); falls back to the product when the map's slope is not positive;
- ``shift-S``: the same with the slope held at 1 (``metric ~ S + c``: the signal read as an
  estimate of the accuracy, off by a constant);
- ``blend-S``: half the simulated futures the product's, half ``map-S``'s;
- ``weights-S``: the product's forecast, its families weighed (held out) on the mapped signal
  instead of the metric;
- ``oracle-labels``: **not a forecast**: the true labels still needed, at the product's per-label
  hours and money rate: the error the rate alone leaves;
- ``rate-decay``: the product's labels, its hours from each round's hours fitted as ``s + q *
  rho**round`` (a one-off cost per new worker that fades) instead of the recent per-label rate;
  ``oracle-labels+rate-decay``: the same on the true labels;
- ``oracle-full``: **not a forecast**: the product's ensemble fitted to *every* round of the loop
  (the future included) and simulated from the k-th round: the error left when the curve is known
  (the measurement noise and whole rounds), a floor for any curve forecast of this kind.

Signals: see ``forecast_signals.py``; ``stab`` is ``1 - changed_all`` (the first round has none). Also printed: the granularity of the truths (labels one round
buys against the labels still needed: one round off is that relative error).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import os

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

from benchmarks import forecast_error as bench  # noqa: E402
from benchmarks.forecast_variants import cells, patched  # noqa: E402

Forecaster = Callable[..., Any]


def with_signals(loop: dict[str, Any]) -> dict[str, Any]:
    """The loop with each row carrying its round's signals (aligned by ``n_labeled``)."""
    sig = loop["signals"]
    if len(sig) != len(loop["rows"]) or any(s["n_labeled"] != r["n_labeled"] for s, r in zip(sig, loop["rows"])):
        raise SystemExit(f"{loop['data']} {loop['config']} seed {loop['seed']}: signals do not align with the rounds")
    rows = [r | {k: v for k, v in s.items() if k != "n_labeled"} for r, s in zip(loop["rows"], sig)]
    return loop | {"rows": rows}


def _noise_fit(x: np.ndarray, y: np.ndarray, families: tuple[str, ...]) -> float:
    """The product's noise unit: the residual noise of the families' best fit to ``y``."""
    from clicloop.orchestrator.reporting import curves

    sse = min(float(curves.fit(m, x[None, :], y[None, :])[3][0]) for m in families)
    return math.sqrt(sse / max(1, x.size - 3))


def mapped(y: np.ndarray, s: np.ndarray, slope: float | None) -> tuple[np.ndarray, float] | None:
    """``(alpha + beta * s, residual noise of y around it)``; ``slope`` fixes beta; None when beta <= 0
    or fewer than 3 rounds carry the signal. Rounds without the signal (NaN: the first round's
    change share) keep their metric."""
    ok = np.isfinite(s)
    if ok.sum() < 3 or np.ptp(s[ok]) <= 0:
        return None
    if slope is None:
        beta, alpha = np.polyfit(s[ok], y[ok], 1)
        dof = max(1, int(ok.sum()) - 2)
    else:
        beta, alpha = slope, float(np.mean(y[ok] - slope * s[ok]))
        dof = max(1, int(ok.sum()) - 1)
    if beta <= 0:
        return None
    yhat = np.where(ok, alpha + beta * np.where(ok, s, 0.0), y)
    return yhat, math.sqrt(float(((y - yhat) ** 2).sum()) / dof)


def signal_forecaster(signal: str, how: str, noise_scale: float | None) -> Forecaster:
    """``map`` / ``shift`` / ``blend`` / ``weights`` of ``signal`` (see the module's docstring)."""
    from clicloop.orchestrator.reporting import curves
    from clicloop.orchestrator.reporting import forecast as F

    original = F._ensemble

    def fc(rows: list[Any], target: float, **kw: Any) -> Any:
        if signal == "stab":  # stabilizing predictions: the share of the pool whose prediction did NOT change
            s = 1.0 - np.array([float(r.changed_all) for r in rows])
        else:
            s = np.array([float(getattr(r, signal)) for r in rows])
        if signal.startswith("entropy"):
            s = 1.0 - s  # rising with the metric, like the others

        def ensemble(x: np.ndarray, y: np.ndarray, n_now: float, step: float, target_: float, n_boot: int,
                     rng: np.random.Generator, families: tuple[str, ...], scale: float) -> Any:
            scale = noise_scale or scale
            m = mapped(y, s[-y.size:], 1.0 if how == "shift" else None)
            if m is None:
                return original(x, y, n_now, step, target_, n_boot, rng, families, scale)
            yhat, sigma = m
            if how == "weights":  # the product's ensemble, its families weighed on the mapped signal
                real = curves.held_out_weights
                with patched(curves, held_out_weights=lambda x_, y_, sig, models=None: real(x_, yhat, sig, models)):
                    return original(x, y, n_now, step, target_, n_boot, rng, families, scale)
            unit = _noise_fit(x, yhat, families)
            mscale = scale * sigma / unit if unit > 0 else scale
            if how != "blend":
                return original(x, yhat, n_now, step, target_, n_boot, rng, families, mscale)
            half = n_boot // 2
            model, params, sims, plats = original(x, y, n_now, step, target_, half, rng, families, scale)
            _, _, sims2, plats2 = original(x, yhat, n_now, step, target_, n_boot - half, rng, families, mscale)
            return model, params, np.concatenate([sims, sims2]), np.concatenate([plats, plats2])

        with patched(F, _ensemble=ensemble):
            return F.forecast(rows, target, **kw)

    return fc


def oracle_forecaster(loop: dict[str, Any], noise_scale: float | None = None) -> Forecaster:
    """The product's ensemble fitted to every round of ``loop`` (the future too), simulated from the k-th."""
    from clicloop.orchestrator.reporting import forecast as F

    original = F._ensemble
    x_all = np.array([float(r["n_labeled"]) for r in loop["rows"]])
    y_all = np.array([float(r["metric"]) for r in loop["rows"]])

    def ensemble(x: np.ndarray, y: np.ndarray, *args: Any) -> Any:
        return original(x_all, y_all, *args)

    def fc(rows: list[Any], target: float, **kw: Any) -> Any:
        with patched(F, _ensemble=ensemble):
            return F.forecast(rows, target, **({"noise_scale": noise_scale} if noise_scale else {}), **kw)

    return fc


def oracle_labels(loop: dict[str, Any]) -> Forecaster:
    """**Not a forecast**: the true labels still needed, turned into hours and money at the product's
    per-label rate (the error left by the rate alone; its interval is the point)."""
    import dataclasses

    from clicloop.orchestrator.reporting import forecast as F

    metric = [float(r["metric"]) for r in loop["rows"]]
    reach = next(i for i, m in enumerate(metric) if m >= 0.98 * max(metric))

    def fc(rows: list[Any], target: float, **kw: Any) -> Any:
        out = F.forecast(rows, target, **kw)
        if out.hours_per_label is None or out.cost_per_label is None:
            return out
        need = float(loop["rows"][reach]["n_labeled"] - rows[-1].n_labeled)
        h = max(0.0, need * out.hours_per_label - float(rows[-1].total_hours))
        c = max(0.0, need * out.cost_per_label - float(rows[-1].cost))
        return dataclasses.replace(out, status="forecast", labels_to_target=F.Interval(need, need, need),
                                   hours_to_target=F.Interval(h, h, h), cost_to_target=F.Interval(c, c, c))

    return fc


def decay_fit(h: np.ndarray) -> tuple[float, float, float] | None:
    """``(s, q, rho)`` of ``h[r] = s + q * rho**r`` (least squares, ``s, q >= 0``, rho on a grid); None
    with fewer than 4 rounds."""
    if h.size < 4:
        return None
    r = np.arange(h.size, dtype=float)
    best = None
    for rho in np.linspace(0.05, 0.95, 19):
        A = np.vstack([np.ones_like(r), rho**r]).T
        (sv, qv), *_ = np.linalg.lstsq(A, h, rcond=None)
        sv, qv = max(float(sv), 0.0), max(float(qv), 0.0)
        sse = float(((h - sv - qv * rho**r) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, sv, qv, float(rho))
    return None if best is None else best[1:]


def decay_hours(rows: list[Any], labels: float, step: float) -> float | None:
    """Human hours of the rounds still to buy ``labels`` (the pending round's included in
    ``labels``, its hours not), each round's hours ``s + q * rho**r`` fitted to every round so far
    (a one-off cost per new worker fades: the simulated crowd's qualification test)."""
    fit = decay_fit(np.array([float(r.total_hours) for r in rows]))
    if fit is None or not math.isfinite(labels):
        return None
    sv, qv, rho = fit
    m, k = max(0.0, labels / step - 1.0), len(rows)
    return sv * m + qv * rho**k * (1 - rho**m) / (1 - rho)


def rate_decay(base: Callable[[dict[str, Any]], Forecaster | None]) -> Callable[[dict[str, Any]], Forecaster]:
    """``base``'s forecast, its hours from :func:`decay_hours` (point, low and high labels) instead of
    the recent per-label rate."""
    import dataclasses

    from clicloop.orchestrator.reporting import forecast as F

    def make(loop: dict[str, Any]) -> Forecaster:
        inner = base(loop) or F.forecast

        def fc(rows: list[Any], target: float, **kw: Any) -> Any:
            out = inner(rows, target, **kw)
            lab = out.labels_to_target
            if lab is None or out.status != "forecast":
                return out
            step = float(np.median(np.diff([r.n_labeled for r in rows])[-3:]))
            h = [decay_hours(rows, v, step) for v in (lab.point, lab.low, lab.high)]
            if any(v is None for v in h):
                return out
            return dataclasses.replace(out, hours_to_target=F.Interval(*h))  # type: ignore[arg-type]

        return fc

    return make


def product_forecaster(noise_scale: float | None) -> Forecaster | None:
    """The product's forecast (at ``noise_scale`` when given)."""
    from clicloop.orchestrator.reporting import forecast as F

    if noise_scale is None:
        return None
    return lambda rows, target, **kw: F.forecast(rows, target, noise_scale=noise_scale, **kw)


def variants(signals: list[str], scales: list[float | None]) -> dict[str, Callable[[dict[str, Any]], Forecaster | None]]:
    """Name -> the forecaster for a loop (None: the product's)."""
    out: dict[str, Callable[[dict[str, Any]], Forecaster | None]] = {}
    for scale in scales:
        tag = f"@{scale}" if scale else ""
        out[f"product{tag}"] = lambda loop, fc=product_forecaster(scale): fc
        out[f"oracle-full{tag}"] = lambda loop, scale=scale: oracle_forecaster(loop, scale)
    out["oracle-labels"] = oracle_labels
    out["rate-decay"] = rate_decay(lambda loop: None)
    out["oracle-labels+rate-decay"] = rate_decay(oracle_labels)
    for how in ("map", "shift", "blend", "weights"):
        for sig in signals:
            for scale in scales:
                fc = signal_forecaster(sig, how, scale)
                out[f"{how}-{sig}" + (f"@{scale}" if scale else "")] = lambda loop, fc=fc: fc
    return out


def cases_of(loops: list[dict[str, Any]], make: Callable[[dict[str, Any]], Forecaster | None]) -> list[dict[str, Any]]:
    out = []
    for loop in loops:
        out += bench.evaluate([loop], forecaster=make(loop))
    return out


def paired(cases: list[dict[str, Any]], base: list[dict[str, Any]]) -> str:
    """Labels error case by case against the product's (same cases, same order): better / worse / tied."""
    def err(c: dict[str, Any]) -> float:
        return bench._error(c["fc_n"], c["true_n"]) if c["fc_n"] is not None and c["true_n"] > 0 else math.nan

    pairs = [(err(c), err(b)) for c, b in zip(cases, base) if not (math.isnan(err(c)) or math.isnan(err(b)))]
    better = sum(v < p for v, p in pairs)
    worse = sum(v > p for v, p in pairs)
    return f"{better} / {worse} / {len(pairs) - better - worse} (sign test p = {sign_test(better, worse):.2f})"


def sign_test(better: int, worse: int) -> float:
    """Two-sided exact sign test of ``better`` against ``worse`` (ties dropped)."""
    n = better + worse
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(better, worse) + 1)) / 2**n
    return min(1.0, 2 * tail)


def granularity(loops: list[dict[str, Any]]) -> list[str]:
    """The labels one round buys against each case's labels still needed (one round off = that error)."""
    cases = bench.evaluate(loops, forecaster=lambda rows, target, **kw: _Null())
    lines = ["| cases from | cases | truth, rounds (median, min-max) | one round / truth (median) | share with one round > 20% of the truth |",
             "|---|---:|---|---:|---:|"]
    for frac in (*bench.FRACTIONS, None):
        sel = [c for c in cases if frac is None or c["fraction"] == frac]
        loop_batch = {(lp["data"], lp["config"], lp["seed"]): lp["batch"] for lp in loops}
        rel = [loop_batch[(c["data"], c["strategy"], c["seed"])] / c["true_n"] for c in sel]
        rounds = [c["reach"] - c["k"] for c in sel]
        lines.append(f"| {'every fraction' if frac is None else f'{frac:.0%}'} | {len(sel)} | {statistics.median(rounds):g} "
                     f"({min(rounds)}-{max(rounds)}) | {bench._pct(statistics.median(rel))} | "
                     f"{bench._pct(sum(r > 0.2 for r in rel) / len(rel))} |")
    return lines


def _curve_at(x: np.ndarray, y: np.ndarray, at: float, families: tuple[str, ...]) -> float:
    """The families' fits to ``(x, y)``, weighted as the product weighs them, at ``at`` labels."""
    from clicloop.orchestrator.reporting import curves

    fits = {m: curves.fit(m, x[None, :], y[None, :]) for m in families}
    sigma = math.sqrt(min(float(f[3][0]) for f in fits.values()) / max(1, x.size - 3))
    w = curves.held_out_weights(x, y, sigma, families)
    return sum(w[m] * float(curves.curve(m, np.array([at]), *(float(v[0]) for v in fits[m][:3]))[0]) for m in families)


def extrapolation(loops: list[dict[str, Any]], signals: list[str]) -> list[str]:
    """How far each curve, fitted to the first k rounds (the metric, or a signal mapped to the
    metric on those rounds), lands from the smooth curve fitted to every round, at the labels
    where the loop reached its target: median absolute difference in metric points, from half the
    rounds and every fraction (the crossing's noise apart: extrapolation alone)."""
    from clicloop.orchestrator.reporting import forecast as F

    fam = tuple(F.FAMILIES)
    errs: dict[str, dict[float, list[float]]] = {}
    slopes: list[float] = []
    for loop in loops:
        x_all = np.array([float(r["n_labeled"]) for r in loop["rows"]])
        y_all = np.array([float(r["metric"]) for r in loop["rows"]])
        reach = int(np.argmax(y_all >= 0.98 * y_all.max()))
        step = float(loop["batch"])
        slopes.append(_curve_at(x_all, y_all, x_all[reach] + step / 2, fam) - _curve_at(x_all, y_all, x_all[reach] - step / 2, fam))
        for frac in bench.FRACTIONS:
            k = max(4, round(frac * reach))
            if k >= reach:
                continue
            ref = _curve_at(x_all, y_all, x_all[reach], fam)
            x, y = x_all[:k], y_all[:k]
            errs.setdefault("metric (the product's input)", {}).setdefault(frac, []).append(abs(_curve_at(x, y, x_all[reach], fam) - ref))
            for sig in signals:
                raw = [r["changed_all"] for r in loop["rows"][:k]] if sig == "stab" else [r[sig] for r in loop["rows"][:k]]
                sv = np.array([float(v) for v in raw])
                sv = 1.0 - sv if sig == "stab" or sig.startswith("entropy") else sv
                m = mapped(y, sv, None)
                if m is not None:
                    errs.setdefault(f"{sig} mapped", {}).setdefault(frac, []).append(abs(_curve_at(x, m[0], x_all[reach], fam) - ref))
    lines = ["| curve fitted to | cases from half | median abs. difference at the target's labels, from half (points) | every fraction (points) |",
             "|---|---:|---:|---:|"]
    for name, by in errs.items():
        half, every = by.get(0.5, []), [v for vs in by.values() for v in vs]
        lines.append(f"| {name} | {len(half)} | {100 * statistics.median(half):.2f} | {100 * statistics.median(every):.2f} |")
    lines += ["", f"The curve fitted to every round rises {100 * statistics.median(slopes):.2f} points per round at the target's "
              f"labels (median of {len(slopes)} loops; {100 * min(slopes):.2f}-{100 * max(slopes):.2f})."]
    return lines


class _Null:
    status, hours_to_target, cost_to_target, labels_to_target = "none", None, None, None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="the loops forecast_signals.py cached")
    ap.add_argument("--data", action="append", default=None, help="as forecast_error.py's --data")
    ap.add_argument("--seeds", default="10-19")
    ap.add_argument("--configs", default="margin,default")
    ap.add_argument("--signals", default="conf_u,conf_all,conf_eval,margin_u,entropy_u")
    ap.add_argument("--noise-scales", default="product", help="comma-separated; 'product' is the product's 1.5")
    ap.add_argument("--only", default=None, help="comma-separated variant names (default: all)")
    args = ap.parse_args(argv)
    data = bench.parse_data(args.data or ["digits:400:10"], 400, 10)
    loops = [with_signals(lp) for lp in bench.run_loops(data, args.configs.split(","), bench.parse_seeds(args.seeds),
                                                          args.cache, 1, cached_only=True)]
    print("\n".join(granularity(loops)) + "\n")
    print("\n".join(extrapolation(loops, args.signals.split(","))) + "\n")
    scales = [None if v == "product" else float(v) for v in args.noise_scales.split(",")]
    table = variants(args.signals.split(","), scales)
    names = args.only.split(",") if args.only else list(table)
    groups = sorted({(lp["data"], lp["config"]) for lp in loops}) + [("all", "all")]
    print("| variant | " + " | ".join(f"{d} {c}, from half" for d, c in groups)
          + " | all, every fraction | labels error against the product's, every fraction: better / worse / tied (sign test) |")
    print("|---|" + "---|" * (len(groups) + 2))
    base = cases_of(loops, table["product"]) if "product" in table else []
    for name in names:
        cases = cases_of(loops, table[name])
        print(f"| {name} | " + " | ".join(cells(cases)) + f" | {paired(cases, base) if base else '-'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
