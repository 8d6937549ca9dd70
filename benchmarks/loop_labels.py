"""Label efficiency of the product: the real :class:`clicloop.Loop`, its default config, against
margin sampling (and random), paired seeds, labels to 95% / 98% of full-data accuracy.

    .venv/bin/python benchmarks/loop_labels.py --data digits --batch 10 --max-labels 400 --seeds 10 \\
        --jobs 2 --out /tmp/loop_digits_b10.json
    .venv/bin/python benchmarks/loop_labels.py --report /tmp/loop_digits_b10.json
    .venv/bin/python benchmarks/loop_labels.py --merge part1.json part2.json --out all.json   # a run made in parts

Every run is ``Loop(config).run()`` with the product's default config (default model, strategy,
pseudo-labels, aggregator) and only the overrides a comparison needs: ``default`` is the loop as
shipped, ``margin`` is ``strategy: margin`` with ``loop.pseudo_labels: null`` and ``loop.cold_start_labels: 0``
(plain margin sampling from the first round), ``random`` likewise
with random sampling. ``--configs NAME=JSON`` adds another row (a JSON mapping merged into the
config, e.g. ``'c10={"model": {"name": "scaled-logreg", "params": {"C": 10}}}'``); ``--set JSON``
is merged into every row (e.g. another model on both sides). For a seed, every row gets the same
seed labels (``data.seed_size`` drawn with ``loop.seed``), the same evaluation split and the same
simulated crowd (workers drawn from the seed); ``--noise P`` makes each answer wrong with
probability P (every worker's accuracy is 1 - P; the evaluation set stays true).

``--data`` is ``digits`` (scikit-learn's, the split ``data: {builtin: digits}`` makes with seed
0, for every seed), a folder holding ``<name>.jsonl`` and ``<name>.minilm.npy`` (in-scope train
items are the pool, in-scope test items the evaluation set; ``oos`` is dropped), or a folder
written by ``--prepare`` (``pool.npz``, ``eval.npz``: the same rows, so a copy can travel without
the source). ``--classes K`` keeps the first K labels (sorted) for short local runs.

The curve of a run is its rounds' ``(labels held, accuracy on the evaluation set)``, seed labels
included, from the Loop's ``RoundResult``s; seconds per round are timed by the round hooks
(:class:`benchmarks.loop_round_time.RoundClock`). The target is 95% / 98% of the full-data accuracy
of the reference row's model (``margin``'s; the product's default model unless ``--set`` changes
it) fitted on the whole pool. ``--report`` prints the harness's paired tables
(:func:`benchmarks.strategies_labels.report`) and then, per row: full-data accuracy of its own
model, final accuracy and its paired difference to margin, how often it is below margin once both
passed 95%, the median seconds per round and the median seconds people wait per round (from a
round's start to its tasks going out). Each process (``--jobs``) runs on one BLAS thread
(``loop.blas_threads: 1``, a resource setting that changes no pick), so runs share the cores.
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
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

from benchmarks.machine import other_machine, processor  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    # plain margin sampling: no pseudo-labels, and its first round picked by margin too (not the
    # default loop's first-round cold start, loop.cold_start_labels: auto, since 2026-12-05)
    "margin": {"strategy": {"name": "margin"}, "loop": {"pseudo_labels": None, "cold_start_labels": 0}},
    "random": {"strategy": {"name": "random"}, "loop": {"pseudo_labels": None}},
}
REFERENCE = "margin"
PURPOSE = "Benchmark: labels the real loop needs to reach a target accuracy (simulated crowd)."


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, mapping by mapping (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) and value else value
    return out


# -- data ---------------------------------------------------------------------------------------


def prepare(spec: str, folder: Path, classes: int | None = None, compress: bool = False, text: bool = False) -> dict[str, Any]:
    """Write ``pool.npz`` / ``eval.npz`` for ``spec`` into ``folder`` (compressed: smaller, slower to
    write); returns the data's summary. With ``text``, ``pool.jsonl`` / ``eval.jsonl`` hold the
    same rows' raw texts instead (a folder with ``<name>.jsonl`` only)."""
    if text:
        return prepare_text(Path(spec), folder, classes)
    if (Path(spec) / "pool.npz").exists():
        with np.load(Path(spec) / "pool.npz") as p, np.load(Path(spec) / "eval.npz") as e:
            X, y, Xe, ye = p["X"], p["truth"], e["X"], e["label"]
        name = json.loads((Path(spec) / "meta.json").read_text())["name"]
    elif spec == "digits":
        from clicloop.orchestrator.config import Data
        from clicloop.orchestrator.data import load_data

        pool, evalset, _ = load_data(Data(builtin="digits"), 0)
        X, y, Xe, ye, name = pool.X, pool.truth.astype(str), evalset.X, evalset.y, "digits"
    else:
        src = Path(spec)
        name = src.name
        rows = [json.loads(line) for line in open(src / f"{name}.jsonl", encoding="utf-8")]
        E = np.load(src / f"{name}.minilm.npy")
        labels = np.array([r["label"] for r in rows])
        split = np.array([r["split"] for r in rows])
        keep = labels != "oos"
        tr, te = np.flatnonzero(keep & (split == "train")), np.flatnonzero(keep & (split == "test"))
        X, y, Xe, ye = E[tr], labels[tr], E[te], labels[te]
    if classes:
        kept = np.unique(y)[:classes]
        X, y = X[np.isin(y, kept)], y[np.isin(y, kept)]
        Xe, ye = Xe[np.isin(ye, kept)], ye[np.isin(ye, kept)]
        name = f"{name} (first {classes} labels)"
    folder.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compress else np.savez
    save(folder / "pool.npz", X=X, truth=y.astype(str), label=np.full(len(y), ""))
    save(folder / "eval.npz", X=Xe, label=ye.astype(str))
    meta = {"name": name, "pool": int(len(y)), "eval": int(len(ye)), "dims": int(X.shape[1]),
            "classes": int(np.unique(y).size)}
    (folder / "meta.json").write_text(json.dumps(meta))
    return meta


def prepare_text(src: Path, folder: Path, classes: int | None = None) -> dict[str, Any]:
    """``pool.jsonl`` (id, text, truth) and ``eval.jsonl`` (id, text, label): the in-scope train
    and test rows of ``src/<name>.jsonl``, the rows :func:`prepare` takes, as raw text."""
    name = src.name
    rows = [json.loads(line) for line in open(src / f"{name}.jsonl", encoding="utf-8")]
    rows = [r for r in rows if r["label"] != "oos"]
    if classes:
        kept = set(sorted({r["label"] for r in rows})[:classes])
        rows = [r for r in rows if r["label"] in kept]
        name = f"{name} (first {classes} labels)"
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, out, column in (("train", "pool.jsonl", "truth"), ("test", "eval.jsonl", "label")):
        part = [r for r in rows if r["split"] == split]
        with open(folder / out, "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps({"id": r["id"], "text": r["text"], column: r["label"]}) + "\n")
        counts[split] = len(part)
    meta = {"name": f"{name} (raw text)", "pool": counts["train"], "eval": counts["test"], "dims": 0,
            "classes": len({r["label"] for r in rows}), "text": True}
    (folder / "meta.json").write_text(json.dumps(meta))
    return meta


def data_section(folder: Path, seed_size: int) -> dict[str, Any]:
    if (folder / "pool.jsonl").exists():
        return {"pool": {"path": str(folder / "pool.jsonl"), "id": "id", "text": "text", "label": "label", "truth": "truth"},
                "eval": {"path": str(folder / "eval.jsonl"), "text": "text", "label": "label"}, "seed_size": seed_size}
    return {"pool": {"path": str(folder / "pool.npz"), "label": "label", "truth": "truth"},
            "eval": {"path": str(folder / "eval.npz"), "label": "label"}, "seed_size": seed_size}


def crowd(noise: float) -> dict[str, Any]:
    """The simulated crowd: every worker answers right with probability 1 - ``noise``."""
    if not 0.0 <= noise < 1.0:
        raise SystemExit(f"--noise must be in [0, 1), got {noise}")
    accuracy = 0.999999 if noise == 0 else 1.0 - noise  # Beta(30 * 0.999999, ...) draws 1.0: no wrong answers
    concentration = 30.0 if noise == 0 else 1e6
    return {"name": "simulated", "params": {"accuracy_mean": accuracy, "accuracy_concentration": concentration,
                                            "careless_fraction": 0.0}}


def loop_config(overrides: dict[str, Any], folder: Path, ns: argparse.Namespace, seed: int, ledger: str) -> dict[str, Any]:
    base = {
        "loop": {"name": "bench", "seed": seed, "batch_size": ns.batch, "purpose": PURPOSE, "blas_threads": 1},
        "data": data_section(folder, ns.seed_size),
        "backend": crowd(ns.noise),
        "stop": {"max_labels": ns.max_labels - ns.seed_size},  # answers bought; the curve counts the seed labels too
        "ledger": ledger,
    }
    return merge(merge(base, ns.set), overrides)


# -- one run ------------------------------------------------------------------------------------


def _init_worker() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread per process: --jobs processes share the cores
    warnings.filterwarnings("ignore", message="The number of unique classes")


def run_one(name: str, overrides: dict[str, Any], folder: str, ns: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One Loop run: its curve ``[[labels, accuracy], ...]`` and seconds per round."""
    from benchmarks.loop_round_time import RoundClock
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.plugins import get_plugin_manager

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict(loop_config(overrides, Path(folder), ns, seed, f"sqlite:///{Path(tmp) / 'ledger.db'}"))
        clock = RoundClock()
        pm = get_plugin_manager(load_entrypoints=False)
        pm.register(clock)
        start = time.perf_counter()
        results = Loop(cfg, plugin_manager=pm).run()
        total = time.perf_counter() - start
    curve = [[r.n_labeled, r.metric] for r in results if r.metric is not None]
    return {"name": name, "seed": seed, "curve": curve, "round_seconds": clock.seconds, "round_waits": clock.waits,
            "seconds": total}


def full_accuracy(overrides: dict[str, Any], folder: Path, ns: argparse.Namespace) -> float:
    """Accuracy of the row's model (as the loop resolves it) fitted on the whole pool's truth."""
    from clicloop import config_from_dict
    from clicloop.orchestrator.data import load_data
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager
    from clicloop.orchestrator.training.models import evaluate
    from clicloop.orchestrator.training.sentence_model import auto_model

    cfg = config_from_dict(loop_config(overrides, folder, ns, 0, "sqlite://"))
    pool, evalset, _ = load_data(cfg.data, 0)
    name = auto_model(pool.kind)[0] if cfg.model.name == "auto" else cfg.model.name
    model = Registry(get_plugin_manager(load_entrypoints=False)).create("model", name, cfg.model.params)
    model.fit(pool.X, pool.truth.astype(str))
    return float(evaluate(model, evalset, "accuracy"))


# -- many runs ----------------------------------------------------------------------------------


def configs(ns: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out = {}
    for spec in ns.configs:
        name, _, body = spec.partition("=")
        if body:
            out[name] = json.loads(body)
        elif name in CONFIGS:
            out[name] = CONFIGS[name]
        else:
            raise SystemExit(f"unknown configuration {name!r}: use one of {', '.join(CONFIGS)} or NAME=JSON")
    return out


def run(ns: argparse.Namespace) -> None:
    import sklearn

    rows = configs(ns)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        meta = prepare(ns.data, folder, ns.classes, text=ns.text)
        if ns.seed_size is None:
            ns.seed_size = 20 if meta["classes"] <= 20 else 200
        _init_worker()
        by_model: dict[str, float] = {}  # rows with the same model share one full-data fit
        fulls = {}
        for name, o in rows.items():
            key = json.dumps(merge(ns.set, o).get("model"), sort_keys=True)
            fulls[name] = by_model[key] if key in by_model else by_model.setdefault(key, full_accuracy(o, folder, ns))
        ref = REFERENCE if REFERENCE in rows else next(iter(rows))
        out: dict[str, Any] = {
            "data": meta["name"], "data_shape": meta, "batch": ns.batch, "max_labels": ns.max_labels,
            "seed_size": ns.seed_size, "full_accuracy": fulls[ref], "full_accuracy_by_row": fulls,
            "seeds": ns.seeds, "first_seed": ns.first_seed, "noise": ns.noise, "set": ns.set, "configs": rows,
            "model": f"the loop's model for the {ref!r} row (full-data accuracy {fulls[ref]:.4f})",
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
                        "sklearn": sklearn.__version__, "jobs": ns.jobs, **processor()},  # a seed's curve is one machine's
            "curves": {name: {} for name in rows}, "seconds": {}, "round_seconds": {name: {} for name in rows},
            "round_waits": {name: {} for name in rows},
        }
        print(f"{meta}; full-data accuracy {fulls}", flush=True)
        seeds = range(ns.first_seed, ns.first_seed + ns.seeds)
        with ProcessPoolExecutor(ns.jobs, initializer=_init_worker) as pool:
            futures = [pool.submit(run_one, name, rows[name], str(folder), ns, seed) for seed in seeds for name in rows]
            for future in as_completed(futures):  # each run is written as it ends: a stopped benchmark keeps them
                res = future.result()
                name, seed = res["name"], str(res["seed"])
                out["curves"][name][seed] = res["curve"]
                out["round_seconds"][name][seed] = res["round_seconds"]
                out["round_waits"][name][seed] = res["round_waits"]
                out["seconds"].setdefault(name, []).append(res["seconds"])
                print(f"{name} seed {seed}: final {res['curve'][-1]} in {res['seconds']:.0f}s, "
                      f"median {statistics.median(res['round_seconds']):.2f}s/round", flush=True)
                Path(ns.out).write_text(json.dumps(out))


# -- report -------------------------------------------------------------------------------------


def report(paths: list[str], against: str | None = None) -> None:
    """The harness's ratio tables, then per row its final accuracy against margin's, the top of
    its curve and its seconds; ``against``: also each row's final accuracy paired with that row's."""
    from benchmarks.strategies_labels import _boot, labels_to
    from benchmarks.strategies_labels import report as ratio_tables

    ratio_tables(paths)
    rng = np.random.default_rng(0)
    for path in paths:
        res = json.loads(Path(path).read_text())
        full, base = res["full_accuracy"], res["curves"].get(REFERENCE)
        m = res.get("machine", {})
        print(f"\n{res['data']}, batch {res['batch']}: final accuracy at {res['max_labels']} labels, the top of the "
              f"curve and seconds per round ({m.get('cpus')} CPUs, {m.get('cpu', 'CPU not recorded')}, BLAS "
              f"{m.get('blas', 'not recorded')}, {m.get('jobs')} runs at a time, Python {m.get('python')}, numpy "
              f"{m.get('numpy')}, scikit-learn {m.get('sklearn')})")
        print("\n| row | its model's full-data accuracy | final accuracy (mean) | final - margin [95% CI] | "
              "below margin after both passed 95% (points, seeds) | mean shortfall there | "
              "median s/round | x margin's | people wait: median s/round | x margin's |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        ref_secs, ref_waits = _median_seconds(res, REFERENCE), _median_seconds(res, REFERENCE, "round_waits")
        for name, curves in res["curves"].items():
            seeds = sorted(set(curves) & set(base or {}), key=int)
            final = np.array([curves[s][-1][1] for s in curves])
            cells = [name, f"{res['full_accuracy_by_row'].get(name, full):.4f}", f"{final.mean():.4f}"]
            if base is not None and seeds:
                d = np.array([curves[s][-1][1] - base[s][-1][1] for s in seeds])
                lo, hi = _boot(d, rng)
                below, points, short, seeds_below = _top_of_curve(curves, base, seeds, 0.95 * full, labels_to)
                cells += [f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]", f"{below}/{points}, {seeds_below}/{len(seeds)}",
                          f"{short:.4f}" if below else "-"]
            else:
                cells += ["-", "-", "-"]
            secs = _median_seconds(res, name)
            cells += [f"{secs:.2f}", f"{secs / ref_secs:.2f}" if ref_secs else "-"]
            waits = _median_seconds(res, name, "round_waits")  # absent from files written before 2026-12-05
            cells += [f"{waits:.2f}", f"{waits / ref_waits:.2f}"] if waits and ref_waits else ["-", "-"]
            print("| " + " | ".join(cells) + " |")
        if against is not None:
            _paired_finals(res, against, rng)


def _paired_finals(res: dict[str, Any], against: str, rng: np.random.Generator) -> None:
    """Each row's final accuracy minus ``against``'s on the same seeds: mean [95% bootstrap
    interval], and in how many seeds it ended above and below."""
    from benchmarks.strategies_labels import _boot

    other = res["curves"].get(against)
    if other is None:
        raise SystemExit(f"--against {against!r}: no such row in {res['data']}'s run (rows: {', '.join(res['curves'])})")
    print(f"\n| row | final - {against} [95% CI] | seeds above / below / level |\n|---|---|---|")
    for name, curves in res["curves"].items():
        seeds = sorted(set(curves) & set(other), key=int)
        if name == against or not seeds:
            continue
        d = np.array([curves[s][-1][1] - other[s][-1][1] for s in seeds])
        lo, hi = _boot(d, rng)
        print(f"| {name} | {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}] | {(d > 0).sum()} / {(d < 0).sum()} / {(d == 0).sum()} |")


def _median_seconds(res: dict[str, Any], name: str, key: str = "round_seconds") -> float:
    """Median over seeds of each run's median seconds per round (``round_waits``: from a round's
    start to its tasks going out); 0 when the row is absent."""
    runs = {seed: s for seed, s in res.get(key, {}).get(name, {}).items() if s}
    return statistics.median(statistics.median(s) for s in runs.values()) if runs else 0.0


def _top_of_curve(curves: dict[str, Any], base: dict[str, Any], seeds: list[str], target: float,
                  labels_to: Any) -> tuple[int, int, float, int]:
    """Label counts, once both runs of a seed reached ``target``, where the row is less accurate
    than margin: ``(points below, points compared, mean shortfall where below, seeds with any)``."""
    below = points = seeds_below = 0
    short = []
    for s in seeds:
        start = max(labels_to(curves[s], target), labels_to(base[s], target))
        mine, ref = dict(map(tuple, curves[s])), dict(map(tuple, base[s]))
        common = [n for n in sorted(set(mine) & set(ref)) if n >= start]
        gaps = [ref[n] - mine[n] for n in common if mine[n] < ref[n]]
        points += len(common)
        below += len(gaps)
        short += gaps
        seeds_below += bool(gaps)
    return below, points, float(np.mean(short)) if short else 0.0, seeds_below


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of one setting (data, batch, budget, seed labels, noise) joined: their rows' curves and
    seconds by seed, e.g. a long run made in parts (``--first-seed``) or a row added later. The
    runs are deterministic given their seed on one machine, so a seed run twice must give the same
    curve; runs recorded on another CPU or BLAS kernel are refused."""
    setting = ("data", "batch", "max_labels", "seed_size", "noise", "full_accuracy")
    first = runs[0]
    why = other_machine([r.get("machine", {}) for r in runs])
    if why:  # another CPU's BLAS kernels round differently: a seed's curve there is not the one here
        raise SystemExit(f"--merge: {why}")
    out = {**first, **{k: {row: dict(v) if isinstance(v, dict) else list(v) for row, v in first.get(k, {}).items()}
                       for k in ("curves", "round_seconds", "round_waits", "seconds")},
           "configs": dict(first["configs"]), "full_accuracy_by_row": dict(first["full_accuracy_by_row"])}
    for run_ in runs[1:]:
        differ = [k for k in setting if run_.get(k) != first.get(k)]
        if differ:
            raise SystemExit(f"--merge: the runs differ in {', '.join(differ)}; only runs of one setting join")
        for row, curves in run_["curves"].items():
            mine = out["curves"].setdefault(row, {})
            clash = [s for s in curves if s in mine and mine[s] != curves[s]]
            if clash:
                raise SystemExit(f"--merge: row {row!r}, seed {clash[0]}: two different curves for one seed")
            if any(s not in mine for s in curves):  # a run already joined adds no seconds twice
                out["seconds"].setdefault(row, []).extend(run_["seconds"][row])
            mine.update(curves)
            out["round_seconds"].setdefault(row, {}).update(run_["round_seconds"][row])
            out["round_waits"].setdefault(row, {}).update(run_.get("round_waits", {}).get(row, {}))
            out["configs"].setdefault(row, run_["configs"][row])
            out["full_accuracy_by_row"].setdefault(row, run_["full_accuracy_by_row"][row])
    seeds = sorted({int(s) for curves in out["curves"].values() for s in curves})
    out["seeds"], out["first_seed"] = len(seeds), seeds[0]
    return out


def main_with_variant(patch: Any, usage: str) -> None:
    """``SCRIPT --variant NAME ARGS...``: ``patch(NAME)``, then :func:`main` with ``ARGS`` (the
    variant scripts, e.g. ``cover_variants.py``; their worker processes are forked and inherit
    the patch)."""
    if len(sys.argv) < 3 or sys.argv[1] != "--variant":
        raise SystemExit(usage)
    patch(sys.argv[2])
    sys.argv = [sys.argv[0], *sys.argv[3:]]
    main()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="digits, a folder such as ../shared/data/clinc150, or one --prepare wrote")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--max-labels", type=int, default=400, help="labels held at the end, seed labels included")
    p.add_argument("--seed-size", type=int, default=None, help="random seed labels (default: 20, or 200 above 20 labels)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--configs", nargs="+", default=["default", "margin"], metavar="NAME[=JSON]")
    p.add_argument("--set", type=json.loads, default={}, metavar="JSON", help="merged into every row's config")
    p.add_argument("--noise", type=float, default=0.0, metavar="P", help="each answer is wrong with probability P")
    p.add_argument("--text", action="store_true", help="the pool and evaluation set as raw text (pool.jsonl, eval.jsonl): "
                   "model auto embeds them (sentence-embedding); rows may name another model")
    p.add_argument("--classes", type=int, default=None, metavar="K", help="keep the first K labels only (short runs)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default="loop_labels.json")
    p.add_argument("--prepare", metavar="DIR", help="only write --data's pool and evaluation set into DIR, then stop")
    p.add_argument("--report", nargs="+", metavar="JSON", help="print the tables of earlier runs")
    p.add_argument("--against", metavar="ROW", help="with --report or --merge: also each row's final accuracy paired "
                   "with this row's (e.g. a variant against default)")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="join runs of one setting (other seeds, other rows) "
                   "into --out, then report it")
    ns = p.parse_args()
    if ns.merge:
        Path(ns.out).write_text(json.dumps(merge_runs([json.loads(Path(f).read_text()) for f in ns.merge])))
        return report([ns.out], ns.against)
    if ns.report:
        return report(ns.report, ns.against)
    if ns.prepare:
        print(prepare(ns.data, Path(ns.prepare), ns.classes, compress=True, text=ns.text))
        return None
    run(ns)
    return None


if __name__ == "__main__":
    main()
