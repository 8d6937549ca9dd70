"""Continuous mode against rounds mode on the discrete-event crowd (issue #25): the real
:class:`clicloop.Loop`, its default config (model, strategy, pseudo-labels), paired seeds.

    nice -n 10 .venv/bin/python benchmarks/continuous_loop.py --data digits --seeds 5 --max-labels 400 \\
        --out /tmp/continuous_digits.json
    .venv/bin/python benchmarks/continuous_loop.py --report /tmp/continuous_digits.json

Rows: ``rounds-b50`` and ``rounds-b10`` (``loop.mode: rounds``, batch 50 / 10) and ``continuous``
(``loop.mode: continuous``, the default ``refit_every`` and ``lookahead``). Every row runs on the
same crowd for a seed: ``backend: event-crowd`` with ``--workers`` workers (all present), log-normal
answer times with median ``--median`` s, error rate ``--error-rate``; the loop's fit and scoring
time is measured and charged to the simulated clock (``compute_s: null``, the backend's default),
so compute time on this machine is part of the simulated hours.

Per run: the curve of model versions ``(labels held, accuracy, simulated second the version was
ready)``, waiting (``wait_s`` summed: time a present worker had no task) against active time,
effective wage on total time (income / (active + unpaid) hours) and, in continuous mode, the mean
staleness. ``--report`` prints, per row, the medians over seeds and the paired ratios to the
rounds rows the issue names: simulated hours to 95% of the full-data accuracy (continuous vs
rounds at batch 50) and labels to 95% / 98% (continuous vs rounds at batch 10); a continuous row
``cont-X`` is paired with ``rounds-b50-X`` where that row ran (``cont-scaled`` with
``rounds-b50-scaled``: one setting in both modes). Full-data accuracy:
the default model fitted on the whole pool (``benchmarks/loop_labels.full_accuracy``). ``--data``
takes what ``benchmarks/loop_labels.py`` takes (``digits`` or a folder of ``<name>.jsonl`` +
``<name>.minilm.npy``); ``--classes K`` keeps the first K labels. ``--session-mean S`` makes
workers come and go (exponential sessions of mean S and absences of mean ``--absence-mean``,
``--present-share`` of them there at the start); ``--first-seed`` and ``--merge`` split a long
run in parts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

from benchmarks.loop_labels import data_section, merge, prepare  # noqa: E402
from benchmarks.machine import other_machine, processor  # noqa: E402

ROWS: dict[str, dict[str, Any]] = {
    "rounds-b50": {"loop": {"mode": "rounds", "batch_size": 50}},
    "rounds-b10": {"loop": {"mode": "rounds", "batch_size": 10}},
    "rounds-b20": {"loop": {"mode": "rounds", "batch_size": 20}},  # one task per worker of the default crowd (measured 2026-12-05)
    "continuous": {"loop": {"mode": "continuous", "batch_size": 10}},
    # not the default: other lookaheads and refit intervals (the price of staleness against waiting)
    "cont-l20": {"loop": {"mode": "continuous", "batch_size": 10, "lookahead": 20}},
    "cont-ramp": {"loop": {"mode": "continuous", "batch_size": 10, "lookahead_ramp": True}},
    "cont-r5": {"loop": {"mode": "continuous", "batch_size": 10, "refit_every": 5}},
    "cont-ramp-r5": {"loop": {"mode": "continuous", "batch_size": 10, "lookahead_ramp": True, "refit_every": 5}},
    # measured 2026-12-05, none better than the default (docs/benchmarks/log.md): the default strategy's
    # shortlist is factor x k, and k here is lookahead + refit_every (50), not the 10 of rounds-b10
    "cont-f4": {"loop": {"mode": "continuous", "batch_size": 10}, "strategy": {"name": "margin-coverage", "params": {"factor": 4}}},
    "cont-f2": {"loop": {"mode": "continuous", "batch_size": 10}, "strategy": {"name": "margin-coverage", "params": {"factor": 2}}},
    "cont-f4-ramp-r5": {"loop": {"mode": "continuous", "batch_size": 10, "lookahead_ramp": True, "refit_every": 5},
                        "strategy": {"name": "margin-coverage", "params": {"factor": 4}}},
    "cont-lean": {"loop": {"mode": "continuous", "batch_size": 10, "lookahead": 24, "refit_every": 5}},
    # measured 2026-12-05 (docs/benchmarks/log.md): a refit after every answer or every second one
    "cont-r1": {"loop": {"mode": "continuous", "batch_size": 10, "refit_every": 1}},
    "cont-r2": {"loop": {"mode": "continuous", "batch_size": 10, "refit_every": 2}},
    # the tasks in someone's hands left out of the ranking and covered around (not the default; measured 2026-12-05)
    # the first wave picked by the strategy, not by coverage (loop.cold_start_labels: 0; measured 2026-12-05)
    "cont-cs0": {"loop": {"mode": "continuous", "batch_size": 10, "cold_start_labels": 0}},
    "cont-pend": {"loop": {"mode": "continuous", "batch_size": 10},
                  "strategy": {"name": "margin-coverage", "params": {"pending": True}}},
    # the pseudo-labeled fit at the model's own tolerance (the default before 2026-12-07; measured 2026-12-07)
    "cont-tolown": {"loop": {"mode": "continuous", "batch_size": 10, "pseudo_labels": {"fit_tol": None}}},
    # the pseudo-labeled fit's C scaled to its share of human labels, in both modes (measured 2026-12-07 as an opt-in,
    # the default since: these rows now run the defaults under names of their own)
    "rounds-b50-scaled": {"loop": {"mode": "rounds", "batch_size": 50, "pseudo_labels": {"fit_C": "scaled"}}},
    "cont-scaled": {"loop": {"mode": "continuous", "batch_size": 10, "pseudo_labels": {"fit_C": "scaled"}}},
    # the product's continuous row, to be run by benchmarks/continuous_variants.py --variant NAME (a name of its own to merge)
    "cont-believer": {"loop": {"mode": "continuous", "batch_size": 10}},
}
PURPOSE = "Benchmark: continuous against rounds mode on a simulated crowd."


def loop_config(row: dict[str, Any], folder: Path, ns: argparse.Namespace, seed: int, ledger: str) -> dict[str, Any]:
    base = {
        "loop": {"name": "bench", "seed": seed, "purpose": PURPOSE, "blas_threads": 1},
        "data": data_section(folder, ns.seed_size),
        "backend": {"name": "event-crowd", "params": {"n_workers": ns.workers, "answer_median_s": ns.median,
                                                      "error_rate": ns.error_rate, "session_mean_s": ns.session_mean,
                                                      "absence_mean_s": ns.absence_mean, "present_share": ns.present_share,
                                                      "compute_s": ns.compute_s}},
        "stop": {"max_labels": ns.max_labels - ns.seed_size},
        "ledger": ledger, "worker_salt": "benchmark-pseudonyms",  # no key file per throwaway ledger
    }
    return merge(base, row)


def run_one(name: str, folder: Path, ns: argparse.Namespace, seed: int) -> dict[str, Any]:
    from clicloop import Loop, config_from_dict
    from clicloop.backends.des import EventCrowd
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.ledger import continuous as cl

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        cfg = config_from_dict(loop_config(ROWS[name], folder, ns, seed, url))
        crowd = EventCrowd(**cfg.backend.params)
        ready: dict[str, float] = {}
        charge = crowd.charge

        def timed(seconds: float, key: str, start: float | None = None) -> float:  # the simulated second each version is ready
            out = charge(seconds, key=key, start=start)
            ready.setdefault(key, crowd.now_ if start is None else start + out)  # a background refit: ready at start + seconds
            return out

        crowd.charge = timed  # type: ignore[method-assign]
        start = time.perf_counter()
        results = Loop(cfg, backend=crowd).run()
        seconds = time.perf_counter() - start
        with Ledger(url) as ledger:
            wait, stale, spent = cl.waiting(ledger, "bench"), cl.staleness(ledger, "bench"), ledger.spent("bench")
    curve = [[r.n_labeled, r.metric, ready.get(f"bench/{r.round_no}", crowd.now_)] for r in results if r.metric is not None]
    return {"name": name, "seed": seed, "curve": curve, "wait_s": wait["wait_s"], "trailing_s": wait.get("trailing_s", 0.0),
            "active_s": wait["active_s"],
            "waiting_share": wait["share_of_active"], "staleness": stale["mean"] if stale else None,
            "wage_total": float(spent["income"]) / spent["total_hours"] if spent["total_hours"] else None,
            "wage_active": float(spent["income"]) / spent["active_hours"] if spent["active_hours"] else None,
            "clock_h": crowd.now_ / 3600, "seconds": seconds, "answers": spent["answers"]}


def full_accuracy(folder: Path, ns: argparse.Namespace) -> float:
    from clicloop import config_from_dict
    from clicloop.orchestrator.data import load_data
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager
    from clicloop.orchestrator.training.models import DEFAULT_FOR, evaluate

    cfg = config_from_dict(loop_config(ROWS["rounds-b10"], folder, ns, 0, "sqlite://"))
    pool, evalset, _ = load_data(cfg.data, 0)
    model = Registry(get_plugin_manager(load_entrypoints=False)).create("model", DEFAULT_FOR[pool.kind], {})
    model.fit(pool.X, pool.truth.astype(str))
    return float(evaluate(model, evalset, "accuracy"))


def first(curve: list[list[float]], target: float, what: int) -> float | None:
    """Labels (``what=0``) or simulated seconds (``what=2``) of the first version at ``target``."""
    return next((p[what] for p in curve if p[1] >= target), None)


def report(path: Path) -> None:
    data = json.loads(path.read_text())
    full, runs = data["full_accuracy"], data["runs"]
    m = data.get("machine", {})
    print(f"{data['meta']['name']}: full-data accuracy {full:.4f}; {data['args']}; {m.get('cpus', '?')} CPUs, CPU "
          f"{m.get('cpu', 'not recorded')}, BLAS {m.get('blas', 'not recorded')}")
    by = {(r["name"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    names = list(dict.fromkeys(r["name"] for r in runs))  # as run (rows since renamed or removed included)
    print(f"{'row':<12} {'wait/active':>11} {'h to 95%':>9} {'labels 95%':>10} {'labels 98%':>10} {'final acc':>9} "
          f"{'wage all/h':>10} {'wage paid/h':>11} {'staleness':>9} {'sim h':>6} {'cpu s':>6}")
    for name in names:
        rs = [by[(name, s)] for s in seeds if (name, s) in by]
        if not rs:
            continue
        med = lambda xs: statistics.median(xs) if xs and None not in xs else None  # noqa: E731
        h95 = [first(r["curve"], 0.95 * full, 2) for r in rs]
        cells = [med([r["waiting_share"] for r in rs]), med([x / 3600 if x is not None else None for x in h95]),
                 med([first(r["curve"], 0.95 * full, 0) for r in rs]), med([first(r["curve"], 0.98 * full, 0) for r in rs]),
                 med([r["curve"][-1][1] for r in rs]), med([r["wage_total"] for r in rs]), med([r["wage_active"] for r in rs]),
                 med([r["staleness"] for r in rs]) if name.startswith("cont") else None, med([r["clock_h"] for r in rs]),
                 med([r["seconds"] for r in rs])]
        fmt = ["{:.2%}", "{:.3f}", "{:.0f}", "{:.0f}", "{:.4f}", "{:.2f}", "{:.2f}", "{:.1f}", "{:.2f}", "{:.0f}"]
        print(f"{name:<12} " + " ".join(f"{(f.format(c) if c is not None else 'n/a'):>{w}}"
                                        for f, c, w in zip(fmt, cells, (11, 9, 10, 10, 9, 10, 11, 9, 6, 6))))
    for name in names:  # per seed: labels to 95% / 98% and sim hours to 95% (- where not reached)
        rs = [by[(name, s)] for s in seeds if (name, s) in by]
        if rs:
            cell = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
            print(f"{name} per seed (labels 95%/98%, sim h 95%, wait): " + "; ".join(
                f"{r['seed']}: {cell(first(r['curve'], 0.95 * full, 0), '{:.0f}')}/{cell(first(r['curve'], 0.98 * full, 0), '{:.0f}')}, "
                f"{cell(first(r['curve'], 0.95 * full, 2), '{:.0f}')} s, {r['waiting_share']:.2%}" for r in rs))
    for name in names:  # waiting split: on answers, and recorded at the stop (cont_waits: no answer carried it)
        rs = [by[(name, s)] for s in seeds if (name, s) in by and "trailing_s" in by[(name, s)]]
        if rs:
            during = statistics.median((r["wait_s"] - r["trailing_s"]) / r["active_s"] for r in rs)
            after = statistics.median(r["trailing_s"] / r["active_s"] for r in rs)
            print(f"{name}: waiting / active on answers {during:.2%}, recorded at the stop (no answer carried it) {after:.2%} (medians)")
    present = {r["name"] for r in runs}
    twin = lambda a, b: f"{b}-{a.split('-', 1)[1]}" if "-" in a and f"{b}-{a.split('-', 1)[1]}" in present else b  # noqa: E731
    pairs = [(f"{what_name} to {int(100 * target)}%: {a} / {twin(a, b)}", a, twin(a, b), what, target)
             for a in names if a.startswith("cont")
             for what_name, b, what, target in (("sim hours", "rounds-b50", 2, 0.95), ("labels", "rounds-b10", 0, 0.95),
                                                ("labels", "rounds-b10", 0, 0.98), ("labels", "rounds-b20", 0, 0.95),
                                                ("labels", "rounds-b20", 0, 0.98))
             if twin(a, b) in present]
    for label, a, b, what, target in pairs:
        ratios = []
        for s in seeds:
            x, y = (first(by[(n, s)]["curve"], target * full, what) if (n, s) in by else None for n in (a, b))
            if x is not None and y:
                ratios.append(x / y)
        shown = ", ".join(f"{v:.2f}" for v in ratios)
        print(f"{label}: median {statistics.median(ratios):.2f} [{_median_interval(ratios)}] over {len(ratios)} paired "
              f"seeds ({shown})" if ratios else f"{label}: not reached in every run")


def _median_interval(ratios: list[float]) -> str:
    """The median's 95% bootstrap interval (seeds resampled, seeded: the same file prints the same)."""
    import numpy as np

    from benchmarks.strategies_labels import _boot

    lo, hi = _boot(np.asarray(ratios), np.random.default_rng(0), stat=np.median)
    return f"95% CI {lo:.2f}, {hi:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--classes", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds --first-seed .. --first-seed + --seeds - 1 "
                    "(a long run split in parts; --merge joins their files)")
    ap.add_argument("--merge", type=Path, nargs="*", help="files of one benchmark's parts: joined into --out")
    ap.add_argument("--max-labels", type=int, default=400)
    ap.add_argument("--seed-size", type=int, default=20)
    ap.add_argument("--workers", type=int, default=20)
    ap.add_argument("--median", type=float, default=15.0)
    ap.add_argument("--error-rate", type=float, default=0.0)
    ap.add_argument("--session-mean", type=float, default=None,
                    help="workers come and go: mean session length in simulated seconds (None: all stay)")
    ap.add_argument("--absence-mean", type=float, default=600.0, help="mean absence between sessions, seconds")
    ap.add_argument("--present-share", type=float, default=1.0, help="share of the workers present at the start")
    ap.add_argument("--compute-s", type=float, default=None,
                    help="simulated seconds charged per fit and scoring (None: the measured time)")
    ap.add_argument("--rows", nargs="*", default=list(ROWS))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--report", type=Path)
    ns = ap.parse_args()
    if ns.merge:
        parts = [json.loads(p.read_text()) for p in ns.merge]
        why = other_machine([part.get("machine", {}) for part in parts])
        if why:  # continuous mode charges measured compute to the clock: seconds of two machines differ
            raise SystemExit(f"--merge: {why}")
        ns.out.write_text(json.dumps({**parts[0], "runs": [r for part in parts for r in part["runs"]]}))
        report(ns.out)
        return
    if ns.report:
        report(ns.report)
        return
    warnings.filterwarnings("ignore", message="The number of unique classes")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        meta = prepare(ns.data, folder, ns.classes)
        full = full_accuracy(folder, ns)
        runs, machine = [], {"cpus": os.cpu_count(), **processor()}
        for seed in range(ns.first_seed, ns.first_seed + ns.seeds):
            for name in ns.rows:
                runs.append(run_one(name, folder, ns, seed))
                r = runs[-1]
                print(f"seed {seed} {name}: {r['answers']} answers, wait/active {r['waiting_share']:.2%}, sim {r['clock_h']:.2f} h, "
                      f"final {r['curve'][-1][1]:.4f}, {r['seconds']:.0f} s", flush=True)
                if ns.out:
                    args = {k: v for k, v in vars(ns).items() if k not in ("out", "report")}
                    ns.out.write_text(json.dumps({"meta": meta, "full_accuracy": full, "args": args, "runs": runs,
                                                  "machine": machine}))
    if ns.out:
        report(ns.out)


if __name__ == "__main__":
    main()
