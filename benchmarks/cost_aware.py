"""Cost-aware selection against plain margin: human seconds to a target accuracy (issue #8, benchmark c).

    .venv/bin/python benchmarks/cost_aware.py --data ../shared/data/clinc150 --intents 20 --seeds 5 --target 0.8

The real loop on CLINC150 text (the first ``--intents`` in-scope intents: their train split is the
pool, their test split the evaluation set; TF-IDF + logistic regression), 20 seed labels, batches
of 10, the simulated crowd whose active time grows with the text's length (5 s + 0.05 s per
character, log-normal), run side by side per seed with ``margin`` and ``cost-aware`` (margin per
expected second, the seconds learned from the ledger). Reported: human seconds (active and
total, with unpaid overhead) and answers until the evaluation accuracy first reaches ``--target``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

STRATEGIES = {"margin": {"name": "margin"}, "cost-aware (margin per second)": {"name": "cost-aware", "params": {"base": "margin"}}}


def write_split(data: Path, intents: int, folder: Path) -> tuple[Path, Path]:
    rows = [json.loads(line) for line in (data / f"{data.name}.jsonl").open(encoding="utf-8")]
    names = sorted({r["label"] for r in rows if r["label"] != "oos"})[:intents]
    keep = [r for r in rows if r["label"] in names]
    paths = []
    for split in ("train", "test"):
        path = folder / f"{split}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "text", "truth", "label"])
            for r in keep:
                if r["split"] == split:
                    w.writerow([r["id"], r["text"], r["label"], r["label"] if split == "test" else ""])
        paths.append(path)
    return paths[0], paths[1]


def run_one(strategy: dict[str, Any], seed: int, pool: Path, evalset: Path, args: argparse.Namespace, ledger: str) -> dict[str, Any]:
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.loop import Loop

    cfg = config_from_dict({
        "loop": {"name": "cost", "seed": seed, "batch_size": 10, "purpose": "Benchmark: cost-aware selection (simulated crowd)."},
        "data": {"pool": {"path": str(pool), "id": "id", "text": "text", "truth": "truth", "label": "label"},
                 "eval": {"path": str(evalset), "id": "id", "text": "text", "label": "label"}, "seed_size": 20},
        "strategy": strategy,
        "backend": {"name": "simulated", "params": {"n_workers": 30}},
        "stop": {"target_metric": args.target, "max_labels": args.max_labels},
        "ledger": ledger,
    })
    results = Loop(cfg).run(restart=True)
    reached = next((i for i, r in enumerate(results) if r.metric is not None and r.metric >= args.target), None)
    bought = results if reached is None else results[:reached]
    return {"reached": reached is not None, "active_s": 3600 * sum(r.active_hours for r in bought),
            "total_s": 3600 * sum(r.total_hours for r in bought), "answers": sum(r.answers for r in bought)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder holding <name>.jsonl (text, label, split)")
    ap.add_argument("--intents", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.8)
    ap.add_argument("--max-labels", type=int, default=1500)
    args = ap.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp:
        pool, evalset = write_split(args.data, args.intents, Path(tmp))
        for seed in range(args.seeds):
            for k, (name, strategy) in enumerate(STRATEGIES.items()):
                r = run_one(strategy, seed, pool, evalset, args, f"sqlite:///{Path(tmp) / f'{seed}-{k}.db'}")
                runs[name].append(r)
                print(f"seed {seed} {name:32s} reached={r['reached']!s:5s} active_s={r['active_s']:.0f} "
                      f"total_s={r['total_s']:.0f} answers={r['answers']}", flush=True)
    base = runs["margin"]
    print(f"\nCLINC150, {args.intents} intents, target accuracy {args.target}, {args.seeds} seeds\n")
    print("| strategy | reached | active seconds, median | total seconds, median | answers, median | active s vs margin, paired median |")
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        ratio = statistics.median(r["active_s"] / b["active_s"] for r, b in zip(rs, base))
        print(f"| {name} | {sum(r['reached'] for r in rs)}/{len(rs)} | {statistics.median(r['active_s'] for r in rs):.0f} | "
              f"{statistics.median(r['total_s'] for r in rs):.0f} | {statistics.median(r['answers'] for r in rs):.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
