"""Forecast signals: the loop's own view of the unlabeled pool each round, recorded beside the
rounds ``forecast_error.py`` caches (issue #22; benchmark only, nothing here is product code).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/forecast_signals.py --seeds 10-19 \\
        --data digits:400:10 --configs margin,default --cache /tmp/fs-cal --jobs 1

Runs the same loops as ``forecast_error.py`` (the real ``Loop``, same configs and seeds; a
subclass whose ``_fit`` also computes, from the model the round just trained, before it is used):

- ``conf_u`` / ``conf_all``: the mean top-class probability over the unlabeled items / the whole pool;
- ``margin_u``: the mean top-two probability margin over the unlabeled items;
- ``entropy_u``: the mean prediction entropy over the unlabeled items, divided by log(classes);
- ``changed_u`` / ``changed_all``: the share of the unlabeled items / the pool whose predicted class
  differs from the previous round's model (stabilizing predictions, Bloodgood & Vijay-Shanker 2009);
- ``conf_eval``: the mean top-class probability over the evaluation items (no labels read).

Each loop's JSON (in ``--cache``, a folder of its own: the rows as ``forecast_error.py`` writes
them, with each round's ``active_hours`` and ``answers`` too) gets ``signals``, one per round in order, each with ``n_labeled`` (the labels its model was
trained on) to align it with the rows. The predictions do not draw random numbers, so the loops
are the ones ``forecast_error.py`` runs. ``forecast_signal_variants.py`` scores forecasts that
read these signals.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import os

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

from benchmarks import forecast_error as bench  # noqa: E402

SIGNALS = ("conf_u", "conf_all", "margin_u", "entropy_u", "changed_u", "changed_all", "conf_eval")


def pool_signals(model: Any, X: Any, unlabeled: np.ndarray, previous: np.ndarray | None, X_eval: Any) -> tuple[dict[str, float], np.ndarray]:
    """The signals of one round's ``model`` (see the module's docstring) and its pool predictions."""
    proba = np.asarray(model.predict_proba(X), dtype=float)
    top2 = np.sort(proba, axis=1)[:, -2:] if proba.shape[1] > 1 else np.hstack([np.zeros_like(proba), proba])
    pred = np.asarray(model.classes_)[proba.argmax(axis=1)]
    u = unlabeled if unlabeled.any() else np.ones(len(pred), dtype=bool)
    ent = -(proba * np.log(np.clip(proba, 1e-12, 1.0))).sum(axis=1) / max(np.log(proba.shape[1]), 1e-12)
    out = {"conf_u": float(top2[u, 1].mean()), "conf_all": float(top2[:, 1].mean()),
           "margin_u": float((top2[u, 1] - top2[u, 0]).mean()), "entropy_u": float(ent[u].mean()),
           "changed_u": float("nan") if previous is None else float((pred[u] != previous[u]).mean()),
           "changed_all": float("nan") if previous is None else float((pred != previous).mean()),
           "conf_eval": float(np.asarray(model.predict_proba(X_eval), dtype=float).max(axis=1).mean()) if X_eval is not None else float("nan")}
    return out, pred


def signal_loop_class() -> type:
    """``Loop`` whose ``_fit`` records :func:`pool_signals` of each round's trained model in ``signals_``."""
    from clicloop import Loop

    class SignalLoop(Loop):  # type: ignore[misc, valid-type]
        def _fit(self, labeled: dict[str, str]) -> Any:
            model, query = super()._fit(labeled)
            rec: dict[str, Any] = {"n_labeled": len(labeled)}
            if model is not None:
                unlabeled = np.ones(len(self.pool_.ids), dtype=bool)
                unlabeled[[self.index_[i] for i in labeled if i in self.index_]] = False
                X_eval = None if self.evalset_ is None else self.evalset_.X
                prev = getattr(self, "prev_pred_", None)
                sig, pred = pool_signals(model, self.pool_.X, unlabeled, prev, X_eval)
                rec |= sig
                self.prev_pred_ = pred
            self.signals_ = [*getattr(self, "signals_", []), rec]
            return model, query

    return SignalLoop


def run_one(name: str, data: dict[str, Any], config: str, seed: int, answers: int, batch: int) -> dict[str, Any]:
    """``forecast_error.run_one`` with the signals recorded (JSON-ready)."""
    from threadpoolctl import threadpool_limits

    from benchmarks.loop_labels import merge
    from clicloop import config_from_dict
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.reporting.report import build_report

    threadpool_limits(1)
    warnings.filterwarnings("ignore", message="The number of unique classes")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        body = {"loop": {"name": "bench", "seed": seed, "batch_size": batch, "purpose": bench.PURPOSE, "blas_threads": 1},
                "data": data, "stop": {"max_labels": answers}, "ledger": url}
        tick = time.perf_counter()
        loop = signal_loop_class()(config_from_dict(merge(body, bench.CONFIGS[config])))
        loop.run()
        with Ledger(url) as led:
            rows, _ = build_report(led, "bench")
    return {"data": name, "config": config, "seed": seed, "answers": answers, "batch": batch,
            "seconds": time.perf_counter() - tick,
            "rows": [{"n_labeled": r.n_labeled, "metric": r.metric, "total_hours": r.total_hours, "cost": str(r.cost),
                      "n_eval": r.n_eval, "active_hours": r.active_hours, "answers": r.answers} for r in rows],
            "signals": getattr(loop, "signals_", [])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="10-19")
    ap.add_argument("--data", action="append", default=None, help="as forecast_error.py's --data")
    ap.add_argument("--configs", default="margin,default")
    ap.add_argument("--cache", type=Path, required=True, help="a folder of its own (the loops with signals)")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    data = bench.parse_data(args.data or ["digits:400:10"], 400, 10)
    loops = bench.run_loops(data, args.configs.split(","), bench.parse_seeds(args.seeds), args.cache, args.jobs, runner=run_one)
    print(f"{len(loops)} loops in {args.cache}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
