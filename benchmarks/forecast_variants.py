"""Forecast variants: ideas for the forecast measured on the loops ``forecast_error.py`` cached,
side by side with the product's forecast (issue #22's target: from half the rounds, median error
<= 20% on labels, hours and money, the 80% interval holding the truth in 75-90% of cases).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/forecast_variants.py --cache /tmp/fc-cache \\
        --data digits:400:10 --data ../shared/data/clinc150:1000:50 --seeds 0-9 --configs margin,default

Each variant changes one thing of :mod:`clicloop.orchestrator.reporting.forecast` for the
duration of its scoring (nothing here is product code):

- ``binomial-max`` / ``binomial-rss`` / ``binomial``: the simulated rounds' measurement noise
  from the evaluation set's binomial sampling error (``sqrt(p (1 - p) / n_eval)`` at the latest
  metric) instead of, or with, the fit's residual noise: the larger of the two, their root sum of
  squares, or the binomial alone (``--noise-scale`` 1.0 and the product's 1.5);
- ``logit``: the curves fitted to the metric's logit (no plateau cap), the metric their sigmoid;
- ``rate-N``: hours and money per label from the last N rounds instead of 3.

The loops must be in ``--cache`` (``forecast_error.py`` runs them); the evaluation-set size of
each data set is read from the data (digits: scikit-learn's split, a folder: its test items).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import os

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

from benchmarks import forecast_error as bench  # noqa: E402


def eval_sizes(data: list[tuple[str, str, int, int]]) -> dict[str, int]:
    """Evaluation items per data set name."""
    from benchmarks.loop_labels import prepare

    with tempfile.TemporaryDirectory() as tmp:
        return {name: int(prepare(spec, Path(tmp) / name)["eval"]) for name, spec, _, _ in data}


@contextlib.contextmanager
def patched(module: Any, **values: Any) -> Iterator[None]:
    """``module``'s attributes set to ``values`` inside the block, restored after."""
    old = {k: getattr(module, k) for k in values}
    try:
        for k, v in values.items():
            setattr(module, k, v)
        yield
    finally:
        for k, v in old.items():
            setattr(module, k, v)


def binomial_ensemble(how: str, n_eval: int) -> Callable[..., Any]:
    """The product's ensemble with the fit's noise ``sigma`` replaced as ``how`` says."""
    from clicloop.orchestrator.reporting import curves
    from clicloop.orchestrator.reporting import forecast as F

    original = F._ensemble

    def ensemble(x: np.ndarray, y: np.ndarray, *args: Any) -> Any:
        p = float(np.clip(y[-1], 1e-3, 1 - 1e-3))
        binom = math.sqrt(p * (1 - p) / n_eval)
        real_fit = curves.fit
        full = {m: real_fit(m, x[None, :], y[None, :]) for m in args[5]}
        sigma = math.sqrt(min(float(f[3][0]) for f in full.values()) / max(1, x.size - 3))
        new = {"max": max(sigma, binom), "rss": math.hypot(sigma, binom), "binom": binom}[how]
        scale = args[6] * (new / sigma if sigma > 0 else 1.0)
        return original(x, y, *args[:6], scale)

    return ensemble


def logit_ensemble(x: np.ndarray, y: np.ndarray, n_now: float, step: float, target: float, n_boot: int,
                   rng: np.random.Generator, families: tuple[str, ...], noise_scale: float) -> Any:
    """The product's ensemble with the curves fitted to ``logit(metric)`` (no plateau cap)."""
    from clicloop.orchestrator.reporting import curves
    from clicloop.orchestrator.reporting import forecast as F

    def sigmoid(v: Any) -> Any:
        return 1 / (1 + np.exp(-v))

    z = np.log(np.clip(y, 1e-4, 1 - 1e-4) / (1 - np.clip(y, 1e-4, 1 - 1e-4)))
    lo = float(z.min())
    full = {m: _fit_logit(curves, m, x[None, :], z[None, :], lo) for m in families}
    dof = max(1, x.size - 3)
    sigma = math.sqrt(min(float(((y - sigmoid(curves.curve(m, x, *(float(v[0]) for v in full[m][:3])))) ** 2).sum())
                          for m in families) / dof)
    zsig = math.sqrt(min(float(f[3][0]) for f in full.values()) / dof)
    weights = curves.held_out_weights(x, (z - lo) / LOGIT_K + 0.5, zsig / LOGIT_K, families)  # the same affine map
    model = max(weights, key=weights.__getitem__)
    counts = rng.multinomial(n_boot, [weights[m] for m in families])
    future = n_now + step * np.arange(1, F.HORIZON + 1)
    sims, plateaus = [], []
    for m, count in zip(families, counts):
        if count == 0:
            continue
        a, b, t, _ = (float(v[0]) for v in full[m])
        fitted = curves.curve(m, x, a, b, t)
        resid = (z - fitted) * math.sqrt(x.size / dof)
        zstar = fitted + resid[rng.integers(0, x.size, (count, x.size))]
        ra, rb, rt, _ = _fit_logit(curves, m, np.broadcast_to(x, zstar.shape), zstar, lo)
        noise = rng.normal(0.0, sigma * noise_scale, (count, F.HORIZON))
        observed = sigmoid(curves.curve(m, future[None, :], ra[:, None], rb[:, None], rt[:, None])) + noise
        hit = observed >= target
        sims.append(np.where(hit.any(axis=1), (hit.argmax(axis=1) + 1) * step, np.inf))
        plateaus.append(sigmoid(ra))
    return model, np.array([float(v[0]) for v in full[model][:3]]), np.concatenate(sims), np.concatenate(plateaus)


LOGIT_K = 100.0


def _fit_logit(curves: Any, m: str, x: np.ndarray, z: np.ndarray, lo: float) -> Any:
    """Least squares of the family in logit space, where the plateau is free: the fit (which keeps
    a plateau in [0, 1], for a metric) runs on ``(z - lo) / LOGIT_K + 0.5`` (an affine map: the
    family's form is kept, and [0, 1] spans logits from ``lo - 50`` to ``lo + 50``), then maps back."""
    a, b, t, sse = curves.fit(m, x, (z - lo) / LOGIT_K + 0.5)
    return (a - 0.5) * LOGIT_K + lo, b * LOGIT_K, t, sse * LOGIT_K**2


def variants(sizes: dict[str, int]) -> dict[str, Callable[[str], contextlib.AbstractContextManager[Any]]]:
    """Name -> a context (given the loop's data set name) in which the product's forecast is the variant."""
    from clicloop.orchestrator.reporting import forecast as F

    out: dict[str, Callable[[str], Any]] = {"product": lambda data: contextlib.nullcontext()}
    for how in ("max", "rss", "binom"):
        out[f"binomial-{how}"] = lambda data, how=how: patched(F, _ensemble=binomial_ensemble(how, sizes[data]))
    out["logit"] = lambda data: patched(F, _ensemble=logit_ensemble)
    for n in (5, 8, 100):
        out[f"rate-{n}"] = lambda data, n=n: patched(F, RATE_ROUNDS=n)
    return out


def score(loops: list[dict[str, Any]], context: Callable[[str], Any], noise_scale: float | None) -> list[str]:
    """Table cells per (data, loop) and all, from half the rounds, and all fractions pooled."""
    from clicloop.orchestrator.reporting import forecast as F

    cases = []
    for loop in loops:
        def fc(rows: list[Any], target: float, **kw: Any) -> Any:
            return F.forecast(rows, target, **({"noise_scale": noise_scale} if noise_scale else {}), **kw)

        with context(loop["data"]):
            cases += bench.evaluate([loop], forecaster=fc)
    return cells(cases)


def cells(cases: list[dict[str, Any]]) -> list[str]:
    """Per (data, loop) and all from half the rounds, then all fractions pooled."""
    groups = sorted({(c["data"], c["strategy"]) for c in cases}) + [("all", "all")]
    out = []
    for data, strategy in groups:
        sel = [c for c in cases if c["fraction"] == 0.5 and data in (c["data"], "all") and strategy in (c["strategy"], "all")]
        out.append(_cell(bench.scores(sel)))
    out.append(_cell(bench.scores(cases)))
    return out


def _cell(s: dict[str, float] | None) -> str:
    if s is None:
        return "-"
    p = bench._pct
    return f"{p(s['n'])} / {p(s['h'])} / {p(s['c'])}; in {p(s['in_n'])} / {p(s['in_h'])} / {p(s['in_c'])}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="the loops forecast_error.py cached")
    ap.add_argument("--data", action="append", default=None, help="as forecast_error.py's --data")
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--configs", default="margin,default")
    ap.add_argument("--only", default=None, help="comma-separated variant names (default: all)")
    args = ap.parse_args(argv)
    data = bench.parse_data(args.data or ["digits:400:10"], 400, 10)
    loops = bench.run_loops(data, args.configs.split(","), bench.parse_seeds(args.seeds), args.cache, 1, cached_only=True)
    table = variants(eval_sizes(data))
    names = args.only.split(",") if args.only else list(table)
    groups = sorted({(lp["data"], lp["config"]) for lp in loops}) + [("all", "all")]
    print("| variant | noise scale | " + " | ".join(f"{d} {c}, from half" for d, c in groups) + " | all, every fraction |")
    print("|---|---:|" + "---|" * (len(groups) + 1))
    for name in names:
        for scale in ((None, 1.0) if name.startswith("binomial") else (None,)):
            cells = score(loops, table[name], scale)
            print(f"| {name} | {scale or 'product'} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
