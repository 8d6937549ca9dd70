"""Peak memory of a large raw-text pool (issue #24): read, embedded through the cache, and the real
loop's first round, each phase in a fresh child process (its peak resident memory).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/text_pool_memory.py --data ../shared/data/clinc150 \\
        --pool-size 1000000 --phases read embed loop --real 2000 20000 --out text_pool_memory.json

``--pool-size N``: ``pool.jsonl`` holds N texts, CLINC150's in-scope train texts repeated with
an index suffix (``"... #123456"``) so that every text, and its hash, differs; ``eval.jsonl`` the
4,500 in-scope test texts. Embedding a million texts with the real model takes hours on a 2-core
CPU, so for the pool's phases the embedding cache is **pre-filled**: the cache file
``embed_texts`` would write for these texts (same folder, same key, same per-text hashes), holding
random unit vectors instead of the model's: the model is not run. Phases:

* ``read``: :func:`clicloop.orchestrator.data.read_pool` alone (the texts in memory);
* ``embed``: the pool read and embedded (:func:`~clicloop.orchestrator.training.sentence_model.embed_data`:
  the texts hashed, the cached matrix memory-mapped);
* ``loop``: ``clicloop.Loop`` with the default config (``model: auto`` = ``sentence-embedding``),
  ``--pseudo`` (default ``null``: pseudo-labels off), batch 50, 200 seed labels and the simulated
  crowd, from ``Loop(config)`` to the end of round 0.

``--real N ...``: the embedding phase's own peak with the real model, in a fresh process and an
empty cache folder per N (the first N texts of the pool): embedding runs chunk by chunk
(8,192 texts), so its peak should not grow with N. Each child reports its peak resident memory
(``VmHWM``; its ``ru_maxrss`` too, which on Linux includes the parent's size at the fork) and, at
its end, its anonymous and file-backed resident memory (``RssAnon``, ``RssFile``: pages of the
memory-mapped cache count as resident but are the page cache's, not the process's own).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config


def make_pool(src: Path, folder: Path, size: int) -> dict[str, Any]:
    """Write ``pool.jsonl`` (``size`` texts) and ``eval.jsonl`` into ``folder``."""
    rows = [json.loads(line) for line in open(src / f"{src.name}.jsonl", encoding="utf-8")]
    train = [r for r in rows if r["label"] != "oos" and r["split"] == "train"]
    test = [r for r in rows if r["label"] != "oos" and r["split"] == "test"]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "pool.jsonl", "w", encoding="utf-8") as f:
        for i in range(size):
            r = train[i % len(train)]
            f.write(json.dumps({"id": f"t{i}", "text": f"{r['text']} #{i}", "truth": r["label"]}) + "\n")
    with open(folder / "eval.jsonl", "w", encoding="utf-8") as f:
        for r in test:
            f.write(json.dumps({"id": r["id"], "text": r["text"], "label": r["label"]}) + "\n")
    return {"pool": size, "eval": len(test), "pool_bytes": (folder / "pool.jsonl").stat().st_size}


def prefill(texts: Any, dim: int = 384, seed: int = 0, chunk: int = 1 << 16) -> Path:
    """Write the cache file ``embed_texts`` would write for ``texts`` (default model), holding
    random unit vectors: the model is not run."""
    from clicloop.orchestrator.training.embeddings import cache_files, default_model, text_hashes

    hashes = text_hashes(texts)
    matrix, hash_file = cache_files(hashes, default_model())
    if matrix.exists() and hash_file.exists():  # filled by an earlier run with --workdir
        return matrix
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(matrix, mode="w+", dtype=np.float32, shape=(len(hashes), dim))
    for start in range(0, len(hashes), chunk):
        block = rng.standard_normal((min(chunk, len(hashes) - start), dim), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out
    np.save(hash_file, hashes)
    return matrix


def memory() -> dict[str, float]:
    """This process's peak resident memory (``VmHWM``), its anonymous / file-backed part now and
    its ``ru_maxrss``, in GB. ``ru_maxrss`` survives ``exec`` on Linux: a child started by a large
    parent reports at least the parent's size, so the peak is ``VmHWM`` (the process image's own)."""
    out = {"ru_maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}
    names = {"VmHWM": "peak_gb", "RssAnon": "rssanon_gb", "RssFile": "rssfile_gb"}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in names:
            out[names[key]] = int(line.split()[1]) / 1e6
    return out


def child(phase: str, folder: Path, arg: str) -> dict[str, Any]:
    """Run one phase in this (fresh) process."""
    from benchmarks.loop_labels import data_section

    from clicloop.orchestrator.config import Source
    from clicloop.orchestrator.data import read_pool

    section = data_section(folder, 200)
    source = Source(**{k: v for k, v in section["pool"].items() if k != "path"}, path=Path(section["pool"]["path"]))
    if os.environ.get("TEXT_POOL_CHUNK_ROWS"):  # --chunk-rows: rows parsed at a time by the pool reader
        from clicloop.orchestrator import tables

        tables.CHUNK_ROWS = int(os.environ["TEXT_POOL_CHUNK_ROWS"])
    start = time.perf_counter()
    out: dict[str, Any] = {"phase": phase, "chunk_rows": os.environ.get("TEXT_POOL_CHUNK_ROWS", "default")}
    if phase == "read":
        pool = read_pool(source)
        out["items"] = len(pool)
    elif phase == "embed":
        from clicloop.orchestrator.training.sentence_model import embed_data, sentence_embedding

        pool, _ = embed_data(sentence_embedding(), read_pool(source), None)
        out["items"], out["dims"] = pool.X.shape
        out["first_last"] = [float(pool.X[0, 0]), float(pool.X[-1, 0])]  # read (a strided sample would page in the file)
    elif phase == "real":
        from clicloop.orchestrator.training.embeddings import embed_texts

        texts = read_pool(source).texts[: int(arg)]
        E = embed_texts(texts, progress=lambda done, total: None)
        out["items"], out["dims"] = E.shape
    elif phase == "loop":
        out.update(first_round(folder, arg))
    out["seconds"] = time.perf_counter() - start
    out.update(memory())
    return out


def first_round(folder: Path, pseudo: str) -> dict[str, Any]:
    """``Loop(config)`` to the end of round 0 on the pool, default config."""
    from benchmarks.loop_labels import loop_config
    from clicloop import Loop, config_from_dict

    ns = argparse.Namespace(batch=50, seed_size=200, max_labels=200 + 2 * 50, noise=0.0, set={})
    with tempfile.TemporaryDirectory() as tmp:
        cfg = loop_config({}, folder, ns, 0, f"sqlite:///{Path(tmp) / 'ledger.db'}")
        cfg["loop"]["pseudo_labels"] = None if pseudo == "null" else pseudo
        loop = Loop(config_from_dict(cfg))
        first = next(iter(loop.rounds()))
        return {"model": loop.model_name_, "labels": first.n_labeled, "metric": first.metric, "pseudo": pseudo}


def run_child(phase: str, folder: Path, arg: str, cache: Path) -> dict[str, Any]:
    """``phase`` in a fresh process with ``cache`` as the cache folder; its report, with the load average."""
    env = {**os.environ, "CLICLOOP_CACHE_DIR": str(cache)}
    cmd = [sys.executable, __file__, "--child", phase, str(folder), arg]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} {arg} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load_average"] = os.getloadavg()[0]
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a folder holding <name>.jsonl (id, text, label, split)")
    p.add_argument("--pool-size", type=int, default=1_000_000)
    p.add_argument("--phases", nargs="*", default=["read", "embed", "loop"], choices=["read", "embed", "loop"])
    p.add_argument("--pseudo", default="null", help="loop.pseudo_labels for the loop phase (null: off)")
    p.add_argument("--real", type=int, nargs="*", default=[], help="texts embedded with the real model, one process each")
    p.add_argument("--chunk-rows", type=int, help="rows the pool reader parses at a time (default: its own, 65,536; "
                   "more than the pool: the whole file at once, as before chunked reading)")
    p.add_argument("--workdir", help="keep the generated pool and cache here (default: a temporary folder)")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--out", default="text_pool_memory.json")
    ns = p.parse_args()
    if ns.child:
        print(json.dumps(child(ns.child[0], Path(ns.child[1]), ns.child[2])))
        return
    if not ns.data:
        p.error("--data is required")
    if ns.chunk_rows:
        os.environ["TEXT_POOL_CHUNK_ROWS"] = str(ns.chunk_rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(ns.workdir or tmp)
        folder, cache = work / "data", work / "cache"
        result: dict[str, Any] = {"load_average_before": os.getloadavg()[0], "phases": []}
        if not (folder / "pool.jsonl").exists() or sum(1 for _ in open(folder / "pool.jsonl")) != ns.pool_size:
            result["pool"] = make_pool(Path(ns.data), folder, ns.pool_size)
        for n in ns.real:
            result["phases"].append(run_child("real", folder, str(n), work / f"cache-real-{n}"))
        if set(ns.phases) - {"read"}:
            os.environ["CLICLOOP_CACHE_DIR"] = str(cache)
            from clicloop.orchestrator.config import Source
            from clicloop.orchestrator.data import read_eval, read_pool

            for name, kind in (("pool", None), ("eval", "label")):
                source = Source(path=folder / f"{name}.jsonl", id="id", text="text", label=kind or "label")
                texts = read_pool(source).texts if kind is None else read_eval(source, "text").X
                prefill(texts)
            del texts
        for phase in ns.phases:
            result["phases"].append(run_child(phase, folder, ns.pseudo, cache))
        Path(ns.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
