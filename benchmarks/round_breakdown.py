"""Where the seconds people wait for a round go: the real loop, one label-benchmark row, one seed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/round_breakdown.py --data ../shared/data/clinc150 --batch 50 --max-labels 1500 --row margin
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/round_breakdown.py --data ../shared/data/clinc150 --batch 50 --max-labels 1500 --row default

Runs :func:`benchmarks.loop_labels.run_one`'s loop (the row's config from
:data:`benchmarks.loop_labels.CONFIGS`, the simulated crowd, seed labels as there) with the
loop's steps timed: the fit the strategy queries with (and its solver's iterations where the
model has ``n_iter_``), the selection (and margin-coverage's cover in it), the whole planning
step (selection, pricing, pre-annotation, recording the tasks), and the later fit
(``orchestrator/later_fit.py``: the model the round evaluates, fitted after the tasks went out).
Medians and means over the rounds after the first (each round's seconds in ``--json FILE``);
"people wait" is :class:`benchmarks.loop_round_time.RoundClock`'s, from a round's start to its
tasks going out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config


def timed(store: dict[str, list[float]], name: str, f: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = f(*args, **kwargs)
        store.setdefault(name, []).append(time.perf_counter() - started)
        return out

    return wrapper


def main() -> None:
    from benchmarks import loop_labels as ll
    from benchmarks.loop_round_time import RoundClock
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.later_fit import LaterFit
    from clicloop.orchestrator.plugins import get_plugin_manager
    from clicloop.strategies import coverage

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="digits, or a folder as benchmarks/loop_labels.py reads")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--max-labels", type=int, default=1500)
    p.add_argument("--seed-size", type=int, default=None, help="default: as loop_labels.py (20 up to 20 classes, else 200)")
    p.add_argument("--row", default="default", choices=sorted(ll.CONFIGS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write each step's seconds, round by round, to FILE")
    ns = p.parse_args()
    times: dict[str, list[float]] = {}
    iters: list[int] = []
    fit_query = timed(times, "query fit", Loop._fit_query)

    def counted(self: Any, labeled: Any) -> Any:
        query, deploy = fit_query(self, labeled)
        n_iter = getattr(getattr(query, "steps", [[None, query]])[-1][1], "n_iter_", None)
        if n_iter is not None:
            iters.append(int(max(n_iter)))
        return query, deploy

    Loop._fit_query = counted
    Loop._select = timed(times, "selection", Loop._select)
    coverage.kmeans_pp = timed(times, "cover (margin-coverage's, in the selection)", coverage.kmeans_pp)
    Loop._plan = timed(times, "planning (selection included)", Loop._plan)
    LaterFit.now = timed(times, "trained model before the tasks", LaterFit.now)
    run = LaterFit.run

    def later(self: Any) -> None:
        if not getattr(self, "done_", False):
            timed(times, "later fit and evaluation", run)(self)

    LaterFit.run = later
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        meta = ll.prepare(ns.data, folder)
        args = argparse.Namespace(batch=ns.batch, max_labels=ns.max_labels, noise=0.0, set={},
                                  seed_size=ns.seed_size or (20 if meta["classes"] <= 20 else 200))
        cfg = ll.loop_config(ll.CONFIGS[ns.row], folder, args, ns.seed, f"sqlite:///{folder / 'ledger.db'}")
        clock = RoundClock()
        pm = get_plugin_manager(load_entrypoints=False)
        pm.register(clock)
        Loop(config_from_dict(cfg), plugin_manager=pm).run()
    print(f"{ns.data}, batch {ns.batch}, to {ns.max_labels} labels, row {ns.row!r}, seed {ns.seed}: "
          f"{len(clock.waits)} rounds sent tasks; medians over the rounds after the first")
    print("| step | median s | mean s | total s |\n|---|---|---|---|")
    for name, values in {"people wait (round start to tasks out)": clock.waits, **times}.items():
        later = values[1:] or values
        print(f"| {name} | {statistics.median(later):.4f} | {statistics.mean(later):.4f} | {sum(values):.2f} |")
    if iters:
        print(f"| query fit's solver iterations | {statistics.median(iters[1:] or iters):.1f} | "
              f"{statistics.mean(iters[1:] or iters):.1f} | {sum(iters)} |")
    if ns.json:
        Path(ns.json).write_text(json.dumps({"people wait": clock.waits, **times, "query fit's solver iterations": iters}))


if __name__ == "__main__":
    main()
