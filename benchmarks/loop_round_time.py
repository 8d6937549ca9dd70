"""Seconds per round of the real loop with and without the default pseudo-labels, side by side,
and with each ``loop.blas_threads`` setting asked for.

    .venv/bin/python benchmarks/loop_round_time.py --data ../shared/data/clinc150 --rounds 8 --batch 50
    .venv/bin/python benchmarks/loop_round_time.py --data digits --rounds 8 --batch 10
    .venv/bin/python benchmarks/loop_round_time.py --data digits --blas-threads 1 none --pseudo auto
    .venv/bin/python benchmarks/loop_round_time.py --data digits --pseudo auto null \
        --sections 'tol3={"fit_tol": 0.001}'
    nice -n 10 .venv/bin/python benchmarks/loop_round_time.py --data synthetic:100000 --rounds 4 --batch 50 \
        --pseudo auto exact null --isolate

The real :class:`clicloop.orchestrator.loop.Loop` (default strategy, default model, a reliable simulated
crowd, SQLite ledger in a temporary folder) runs ``--rounds`` rounds from ``--seed-size`` seed
labels, once per setting of ``loop.pseudo_labels`` (``auto`` is the default: agreeing
pseudo-labels on a numeric pool; ``null`` is off). Each round's wall time (fit, select, dispatch,
collect, evaluate) runs from its ``clicloop_round_started`` to its ``clicloop_round_finished``
hook; the last round listed only fits and evaluates, then stops at ``max_rounds``. "People
wait" is a round's seconds from its start to its tasks going out (:class:`RoundClock`); this crowd
answers at once, so the rest of a round (the model it evaluates, fitted while real people would be
answering) follows at once too. ``--sections
NAME=JSON`` adds a row per ``loop.pseudo_labels`` section (e.g. a candidate ``max_rows``). ``--blas-threads``
runs every setting once per value (``auto``, a count, or ``none`` for the libraries' own choice),
in the order given, all in one process. ``--data`` is ``digits`` (the bundled
data) or a folder holding ``<name>.jsonl`` and ``<name>.minilm.npy`` (CLINC150 in
../shared/data: in-scope train items are the pool, in-scope test items the evaluation set).
"""

from __future__ import annotations

import argparse
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

from benchmarks.machine import describe  # noqa: E402
from clicloop.orchestrator.hookspecs import hookimpl  # noqa: E402

SETTINGS = {"pseudo_labels: auto (default)": "auto", "pseudo_labels: exact graph (brute force)": "exact",
            "pseudo_labels: null": None}
SECTION = {"exact": {"graph": "exact"}}  # --pseudo names that stand for a loop.pseudo_labels section


def section(pseudo: Any) -> Any:
    """``loop.pseudo_labels`` for a setting: a mapping as it is, a --pseudo name as :data:`SECTION` says."""
    return pseudo if isinstance(pseudo, dict) else SECTION.get(pseudo, pseudo)


def sections(specs: list[str]) -> dict[str, Any]:
    """``--sections NAME=JSON`` as table rows: ``{title: loop.pseudo_labels mapping}``."""
    import json

    rows = {}
    for spec in specs:
        name, sep, body = spec.partition("=")
        try:
            section = json.loads(body) if sep else None
        except json.JSONDecodeError as e:
            raise SystemExit(f"--sections {spec!r}: the part after = is not JSON ({e})") from e
        if not isinstance(section, dict):
            raise SystemExit(f"--sections {spec!r}: give NAME=JSON, a loop.pseudo_labels mapping, e.g. "
                             "'r5k={\"max_rows\": 5000}'")
        rows[f"pseudo_labels: {name} {body}"] = section
    return rows


def data_section(spec: str, folder: Path, seed_size: int) -> dict[str, Any]:
    """The config's ``data`` section: the bundled digits, or npz files written from the folder
    (its JSONL and embeddings, or the files ``loop_labels.py --prepare`` wrote)."""
    if spec == "digits":
        return {"builtin": "digits", "seed_size": seed_size}
    if spec.startswith("synthetic:"):  # synthetic:ROWS[xDIM]: clustered Gaussians, 100 classes
        from benchmarks.loop_labels import data_section as files
        from benchmarks.synthetic_pool import write

        rows, _, dim = spec.split(":", 1)[1].partition("x")
        write(folder, int(rows), int(dim or 384), 100, 5000, 0)
        return files(folder, seed_size)
    from benchmarks.loop_labels import data_section as files, prepare

    prepare(spec, folder)
    return files(folder, seed_size)


def round_seconds(data: dict[str, Any], pseudo: Any, ns: argparse.Namespace, folder: Path,
                  blas: Any = "auto") -> tuple[list[float], list[float], list[float], list[float]]:
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.loop import Loop
    from clicloop.orchestrator.plugins import get_plugin_manager

    cfg = config_from_dict({
        "loop": {"name": "round-time", "seed": ns.seed, "batch_size": ns.batch, "pseudo_labels": section(pseudo),
                 "blas_threads": blas,
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
    return clock.seconds, [r.metric for r in results], clock.cpu, clock.waits


def isolated(data: dict[str, Any], pseudo: Any, ns: argparse.Namespace, folder: Path,
             blas: Any) -> tuple[list[float], list[float], list[float], list[float], float]:
    """:func:`round_seconds` in a fresh process with an empty graph cache: ``(seconds, metrics,
    CPU seconds, waits, peak resident memory in GB)`` of that process (the pool, the loop and its
    pseudo-labels: ``ru_maxrss``, the child's own high-water mark)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_child, data, pseudo, ns, folder, blas).result()


def _child(data: dict[str, Any], pseudo: Any, ns: argparse.Namespace, folder: Path,
           blas: Any) -> tuple[list[float], list[float], list[float], list[float], float]:
    import os
    import resource

    os.environ["CLICLOOP_CACHE_DIR"] = str(folder / "cache")
    secs, metrics, cpu, waits = round_seconds(data, pseudo, ns, folder, blas)
    return secs, metrics, cpu, waits, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


class RoundClock:
    """A plugin: the wall time of each round, from its start to its committed result, and the
    process's CPU time over it (all its threads: above the wall time when several cores work,
    below it when the machine's other work takes the cores); and ``waits``, each round's seconds
    from its start to its tasks going out (what people who answered the round before wait for;
    the model the round evaluates is fitted after that, while they work: ``orchestrator/later_fit.py``)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.cpu: list[float] = []
        self.waits: list[float] = []

    @hookimpl
    def clicloop_round_started(self, loop: Any, round_no: int) -> None:
        self.start_, self.cpu_, self.sent_ = time.perf_counter(), time.process_time(), False

    @hookimpl
    def clicloop_tasks_dispatched(self, loop: Any, round_no: int, tasks: Any) -> None:
        if not self.sent_:  # the round's first tasks (more answers for a disagreement come later)
            self.waits.append(time.perf_counter() - self.start_)
            self.sent_ = True

    @hookimpl
    def clicloop_round_finished(self, loop: Any, result: Any) -> None:
        self.seconds.append(time.perf_counter() - self.start_)
        self.cpu.append(time.process_time() - self.cpu_)


def load_average() -> str:
    """The machine's 1-, 5- and 15-minute load averages (``/proc/loadavg``; "-" where there is none)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--seed-size", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blas-threads", nargs="+", default=["auto"], help="loop.blas_threads values: auto, a count, none")
    p.add_argument("--pseudo", nargs="+", choices=[v for v in SETTINGS.values() if v] + ["null"], default=None,
                   help="only these loop.pseudo_labels settings (auto, exact, null); default: auto and null")
    p.add_argument("--sections", nargs="+", default=[], metavar="NAME=JSON",
                   help="more rows, each a loop.pseudo_labels mapping (e.g. 'r5k={\"max_rows\": 5000}')")
    p.add_argument("--isolate", action="store_true", help="each setting in a fresh process with an empty graph "
                   "cache; adds the first round, the median of the later ones and the peak memory")
    ns = p.parse_args()
    blas_values = [None if b == "none" else b if b == "auto" else int(b) for b in ns.blas_threads]
    settings = {t: v for t, v in SETTINGS.items() if (v or "null") in (ns.pseudo or ["auto", "null"])}
    settings.update(sections(ns.sections))
    warnings.filterwarnings("ignore", message="The number of unique classes")  # 150 intents, few labels each
    with tempfile.TemporaryDirectory() as tmp:
        data = data_section(ns.data, Path(tmp), ns.seed_size)
        print(f"{ns.data}: {ns.rounds} rounds of {ns.batch}, {ns.seed_size} seed labels, seed {ns.seed}; "
              f"{os.cpu_count()} CPUs, {describe()}")
        if ns.isolate:
            print("| setting | loop.blas_threads | first round s (CPU s) | median later s (CPU s) | people wait: first / "
                  "median later s | peak memory GB | each round (s) | final metric | load before / after |"
                  "\n|---|---|---|---|---|---|---|---|---|")
        else:
            print("| setting | loop.blas_threads | median s/round (CPU s) | people wait: median s | each round (s) | "
                  "final metric | load before / after |\n|---|---|---|---|---|---|---|")
        for n, (title, pseudo) in enumerate(settings.items()):
            for blas in blas_values:
                folder = Path(tmp) / f"{n}-{blas}"
                folder.mkdir()
                before = load_average()
                if ns.isolate:
                    secs, metrics, cpu, waits, peak = isolated(data, pseudo, ns, folder, blas)
                    each = (f"{secs[0]:.1f} ({cpu[0]:.1f}) | {statistics.median(secs[1:] or secs):.2f} "
                            f"({statistics.median(cpu[1:] or cpu):.2f}) | {waits[0]:.1f} / "
                            f"{statistics.median(waits[1:] or waits):.2f} | {peak:.2f} | ")
                else:
                    secs, metrics, cpu, waits = round_seconds(data, pseudo, ns, folder, blas)
                    each = f"{statistics.median(secs):.2f} ({statistics.median(cpu):.2f}) | {statistics.median(waits):.2f} | "
                print(f"| {title} | {blas} | {each}{' '.join(f'{s:.1f}' for s in secs)} | {metrics[-1]:.4f} | "
                      f"{before} / {load_average()} |", flush=True)


if __name__ == "__main__":
    main()
