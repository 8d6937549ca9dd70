"""How far the default loop's warm-started pseudo-labeled fit is from converged: along one run of
the real ``Loop`` (the default config, ``benchmarks/loop_labels.py``'s ``default`` row), at the
given label counts, the round's pseudo-labeled training set is refitted from scratch and, from
the product's fit, with tighter tolerances; each fit's accuracy on the evaluation set, its
L-BFGS iterations and seconds are printed as JSON lines. The loop's own picks and fits are
unchanged (the refits are evaluated and dropped). ``--Cs`` also refits each set with another C
(the pseudo-labeled fit's regularisation; no pick depends on it), ``--scaled`` with the model's
C times human labels / rows (``loop.pseudo_labels.fit_C: scaled``), and ``--second-pass`` on
other choices of the pseudo-labeled rows (:func:`second_pass`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pseudo_fit_convergence.py --data ../shared/data/clinc150 --batch 10 --seed 10 --at 500,600,650,700,800

Measured on 2026-12-07 (docs/benchmarks/log.md, "The pseudo-labeled fit, converged" and "The
pseudo-labeled fit probed offline: a smaller C, other sets of pseudo-labels").
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="digits, or a folder as benchmarks/loop_labels.py reads")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--seed", type=int, default=10, help="the run's seed (10+: calibration seeds)")
    p.add_argument("--at", type=lambda t: {int(a) for a in t.split(",")}, required=True, help="label counts, e.g. 500,600")
    p.add_argument("--tols", type=lambda t: [float(a) for a in t.split(",")], default=[1e-5, 1e-6])
    p.add_argument("--second-pass", action="store_true",
                   help="also refit on the rows whose spread label the pseudo-labeled fit (not the human-label fit) predicts")
    p.add_argument("--scaled", action="store_true",
                   help="also refit with C x human labels / rows (the prior weighs as much as on the human labels alone)")
    p.add_argument("--Cs", type=lambda t: [float(a) for a in t.split(",")], default=[],
                   help="also refit the pseudo-labeled set warm with these C (the last step's), at the tightest tolerance")
    ns = p.parse_args()
    from benchmarks import loop_labels as ll
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.training import semisup
    from clicloop.orchestrator.training.models import evaluate
    from clicloop.orchestrator.training.warmstate import fit_regularisation

    captured: dict[str, Any] = {}
    loops: list[Any] = []
    plain_with, plain_trained, plain_build = semisup.with_pseudo_labels, semisup._fit_trained, Loop._build

    def with_pseudo(labeler: Any, X: Any, idx: Any, y: Any, fit_kwargs: Any, model: Any = None, exclude: Any = None,
                    remember: bool = True) -> Any:
        out = plain_with(labeler, X, idx, y, fit_kwargs, model, exclude, remember)
        if remember and model is not None and len(y) in ns.at:
            human = copy.deepcopy(model)  # the fit on human labels, as the query uses it
            captured["set"] = (out[0], out[1], len(y), human)
            if ns.second_pass:
                from clicloop.orchestrator.training.spreading import normalise, top_share
                unlabeled = np.setdiff1d(np.arange(labeler.spread_.shape[0]), idx)
                classes = np.unique(y)
                spread = classes[normalise(labeler.spread_[unlabeled]).argmax(axis=1)]
                sure = top_share(labeler.spread_)[unlabeled]
                captured["pool"] = (X, idx, y, unlabeled, spread, sure, human)  # compare() refits copies, never it
        return out

    def fit_trained(model: Any, labeler: Any, X: Any, idx: Any, y: Any, fit_kwargs: Any) -> Any:
        captured.pop("set", None)
        started = time.perf_counter()
        trained = plain_trained(model, labeler, X, idx, y, fit_kwargs)
        seconds = time.perf_counter() - started
        if "set" in captured:
            _, y2, n, query = captured["set"]
            scaled = list(fit_regularisation(query, "scaled", n, len(y2)).values())[-1:] if ns.scaled else []
            row = compare(trained, seconds, *captured.pop("set"), loops[0].evalset_, ns.tols, evaluate, ns.Cs + scaled)
            if scaled:
                row["scaled_C"] = round(scaled[0], 4)
                row["scaled"] = row.pop(f"C{scaled[0]:g}")
            if "pool" in captured:
                row |= second_pass(trained, *captured.pop("pool"), loops[0].evalset_, evaluate)
            print(json.dumps(row), flush=True)
        return trained

    def build(self: Any) -> Any:
        loops.append(self)
        return plain_build(self)

    semisup.with_pseudo_labels, semisup._fit_trained, Loop._build = with_pseudo, fit_trained, build
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        meta = ll.prepare(ns.data, folder)
        args = argparse.Namespace(batch=ns.batch, max_labels=max(ns.at), noise=0.0, set={},
                                  seed_size=20 if meta["classes"] <= 20 else 200)
        cfg = ll.loop_config(ll.CONFIGS["default"], folder, args, ns.seed, f"sqlite:///{folder / 'l.db'}")
        Loop(config_from_dict(cfg)).run()


def compare(trained: Any, seconds: float, X2: Any, y2: Any, n: int, query: Any, evalset: Any, tols: list[float],
            evaluate: Any, Cs: list[float] = ()) -> dict[str, Any]:
    """The product's fit against a cold refit, warm refits at tighter tolerances and with another C."""
    def last(m: Any) -> Any:
        return m.steps[-1][1] if hasattr(m, "steps") else m

    row = {"labels": n, "product": round(evaluate(trained, evalset, "accuracy"), 4), "product_s": round(seconds, 2),
           "product_iters": int(np.max(last(trained).n_iter_)), "pseudo_rows": int(len(y2) - n)}
    started = time.perf_counter()
    cold = copy.deepcopy(query)
    cold.fit(X2, y2)
    row |= {"cold": round(evaluate(cold, evalset, "accuracy"), 4), "cold_s": round(time.perf_counter() - started, 2),
            "cold_iters": int(np.max(last(cold).n_iter_))}
    for tol in tols:
        warm = copy.deepcopy(trained)
        last(warm).set_params(warm_start=True, tol=tol)
        started = time.perf_counter()
        warm.fit(X2, y2)
        row |= {f"tol{tol:g}": round(evaluate(warm, evalset, "accuracy"), 4),
                f"tol{tol:g}_s": round(time.perf_counter() - started, 2)}
    for C in Cs:
        warm = copy.deepcopy(trained)
        last(warm).set_params(warm_start=True, tol=min(tols, default=1e-5), C=C)
        warm.fit(X2, y2)
        row[f"C{C:g}"] = round(evaluate(warm, evalset, "accuracy"), 4)
    return row


def second_pass(trained: Any, X: Any, idx: Any, y: Any, unlabeled: Any, spread: Any, sure: Any, human: Any,
                evalset: Any, evaluate: Any) -> dict[str, Any]:
    """Other choices of the pseudo-labeled rows, each refitted warm from the product's fit at
    tolerance 0.00001: ``pass2`` the rows whose spread label the pseudo-labeled fit predicts
    (co-training's second round); ``and3`` those both fits predict; ``topQ`` the agreeing rows
    whose spreading confidence is in their top Q share."""
    from clicloop.orchestrator.training.models import predicted_labels

    text = spread.astype(str)
    by_pseudo = predicted_labels(trained, X[unlabeled]) == text
    by_human = predicted_labels(human, X[unlabeled]) == text
    cut = {f"top{q:g}": by_human & (sure >= np.quantile(sure[by_human], 1 - q)) for q in (0.5, 0.75)}
    row: dict[str, Any] = {}
    for name, keep in {"pass2": by_pseudo, "and3": by_pseudo & by_human, **cut}.items():
        rows = unlabeled[keep]
        X2, y2 = X[np.concatenate([idx, rows])], np.concatenate([y, spread[keep].astype(y.dtype)])
        warm = copy.deepcopy(trained)
        (warm.steps[-1][1] if hasattr(warm, "steps") else warm).set_params(warm_start=True, tol=1e-5)
        warm.fit(X2, y2)
        row |= {name: round(evaluate(warm, evalset, "accuracy"), 4), f"{name}_rows": int(rows.size)}
    return row


if __name__ == "__main__":
    main()
