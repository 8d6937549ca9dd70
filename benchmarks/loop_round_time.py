"""Seconds per round of the real loop with and without the default pseudo-labels, side by side,
and with each ``loop.blas_threads`` setting asked for.

    .venv/bin/python benchmarks/loop_round_time.py --data ../shared/data/clinc150 --rounds 8 --batch 50
    .venv/bin/python benchmarks/loop_round_time.py --data digits --rounds 8 --batch 10
    .venv/bin/python benchmarks/loop_round_time.py --data digits --blas-threads 1 none --pseudo auto

The real :class:`clicloop.orchestrator.loop.Loop` (default strategy, default model, a reliable simulated
crowd, SQLite ledger in a temporary folder) runs ``--rounds`` rounds from ``--seed-size`` seed
labels, once per setting of ``loop.pseudo_labels`` (``auto`` is the default: agreeing
pseudo-labels on a numeric pool; ``null`` is off). Each round's wall time (fit, select, dispatch,
collect, evaluate) runs from its ``clicloop_round_started`` to its ``clicloop_round_finished``
hook; the last round listed only fits and evaluates, then stops at ``max_rounds``. ``--blas-threads``
runs every setting once per value (``auto``, a count, or ``none`` for the libraries' own choice),
in the order given, all in one process. ``--data`` is ``digits`` (the bundled
data) or a folder holding ``<name>.jsonl`` and ``<name>.minilm.npy`` (CLINC150 in
../shared/data: in-scope train items are the pool, in-scope test items the evaluation set).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clicloop.orchestrator.hookspecs import hookimpl  # noqa: E402

SETTINGS = {"pseudo_labels: auto (default)": "auto", "pseudo_labels: null": None}


def data_section(spec: str, folder: Path, seed_size: int) -> dict[str, Any]:
    """The config's ``data`` section: the bundled digits, or npz files written from the folder
    (its JSONL and embeddings, or the files ``loop_labels.py --prepare`` wrote)."""
    if spec == "digits":
        return {"builtin": "digits", "seed_size": seed_size}
    from benchmarks.loop_labels import data_section as files, prepare

    prepare(spec, folder)
    return files(folder, seed_size)


def round_seconds(data: dict[str, Any], pseudo: Any, ns: argparse.Namespace, folder: Path,
                  blas: Any = "auto") -> tuple[list[float], list[float]]:
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.loop import Loop
    from clicloop.orchestrator.plugins import get_plugin_manager

    cfg = config_from_dict({
        "loop": {"name": "round-time", "seed": ns.seed, "batch_size": ns.batch, "pseudo_labels": pseudo, "blas_threads": blas,
                 "purpose": "Benchmark: seconds per round of the real loop (simulated crowd)."},
        "data": data,
        "backend": {"name": "simulated", "params": {"accuracy_mean": 0.999, "careless_fraction": 0.0}},
        "stop": {"max_rounds": ns.rounds},
        "ledger": f"sqlite:///{folder / 'ledger.db'}",
    })
    clock = RoundClock()
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(clock)
    results = Loop(cfg, plugin_manager=pm).run()
    return clock.seconds, [r.metric for r in results]


class RoundClock:
    """A plugin: the wall time of each round, from its start to its committed result."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    @hookimpl
    def clicloop_round_started(self, loop: Any, round_no: int) -> None:
        self.start_ = time.perf_counter()

    @hookimpl
    def clicloop_round_finished(self, loop: Any, result: Any) -> None:
        self.seconds.append(time.perf_counter() - self.start_)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--seed-size", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blas-threads", nargs="+", default=["auto"], help="loop.blas_threads values: auto, a count, none")
    p.add_argument("--pseudo", nargs="+", choices=list(SETTINGS.values()) + ["null"], default=None,
                   help="only these loop.pseudo_labels settings (auto, null); default: both")
    ns = p.parse_args()
    blas_values = [None if b == "none" else b if b == "auto" else int(b) for b in ns.blas_threads]
    settings = {t: v for t, v in SETTINGS.items() if ns.pseudo is None or (v or "null") in ns.pseudo}
    warnings.filterwarnings("ignore", message="The number of unique classes")  # 150 intents, few labels each
    with tempfile.TemporaryDirectory() as tmp:
        data = data_section(ns.data, Path(tmp), ns.seed_size)
        print(f"{ns.data}: {ns.rounds} rounds of {ns.batch}, {ns.seed_size} seed labels, seed {ns.seed}")
        print("| setting | loop.blas_threads | median s/round | each round (s) | final metric |\n|---|---|---|---|---|")
        for title, pseudo in settings.items():
            for blas in blas_values:
                folder = Path(tmp) / f"{pseudo}-{blas}"
                folder.mkdir()
                secs, metrics = round_seconds(data, pseudo, ns, folder, blas)
                print(f"| {title} | {blas} | {statistics.median(secs):.2f} | {' '.join(f'{s:.1f}' for s in secs)} | "
                      f"{metrics[-1]:.4f} |", flush=True)


if __name__ == "__main__":
    main()
