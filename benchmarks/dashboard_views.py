"""Dashboard latency: every view served over HTTP from a ledger of 1,000,000 assignments (target < 2 s).

    .venv/bin/python benchmarks/dashboard_views.py --rows 1000000 --reps 3 --backend sqlite --out /tmp/dashboard_views.md
    .venv/bin/python benchmarks/dashboard_views.py --rows 1000000 --reps 3 --backend postgresql

The big ledger is drawn and bulk-loaded by ``benchmarks/ledger_bench.py`` (``draw`` + ``bulk_load``:
rows shaped exactly like the Ledger's, seeded): one loop of ``--rows`` answers over ``--rounds``
rounds, ~2,000 workers on two backends, reviews, reversals, corrections, adjustments. A deployment
is added so the post-deployment view has work to do: ``--predictions`` production predictions over
30 days, all triaged, ``--reviews`` of them reviewed through the real ``Ledger.record_answers`` path
(a review loop with its own answers, pay and workers), a tenth of the reviews random audits.

The dashboard app (read-only engine) is then asked for every view by a real HTTP client against
uvicorn on 127.0.0.1, views alternating inside each repetition; the figure is the median time to
the full response (SQL, figures, HTML), and "< 2 s?" judges it. The first request of each view is
reported too: it pays for whatever the operating system's page cache lost since the ledger was
last read (on a shared machine, anything from nothing to the whole file). PostgreSQL gets an ANALYZE after the load
(what autovacuum does soon after); SQLite gets none (clicloop never runs one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "ledger-bench")

TARGET_S = 2.0
DEPLOYMENT = "assistant"
INTENTS = ("weather", "music", "timer", "travel", "banking", "out_of_scope")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def add_deployment(url: str, predictions: int, reviews: int, seed: int) -> None:
    """A deployment's predictions, triage decisions and reviews; the review work recorded by
    ``Ledger.record_answers`` under the loop ``assistant:review`` (tasks of kind review)."""
    from benchmarks.ledger_bench import BACKENDS, T0, write_rows
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.ledger import schema as s
    from clicloop.orchestrator.postdeploy import review_loop

    rng = np.random.default_rng(seed)
    loop = review_loop(DEPLOYMENT)
    when = np.sort(T0 + rng.uniform(0, 30 * 86400, predictions))
    label = rng.integers(0, len(INTENTS) - 1, predictions)
    conf = rng.beta(5, 2, predictions)
    picked = np.sort(rng.choice(predictions, reviews, replace=False))
    audit = np.zeros(predictions, dtype=bool)
    audit[picked[rng.random(reviews) < 0.1]] = True
    work = write_rows(loop, reviews, workers=60, seed=seed, round_size=500)
    with Ledger(url) as ledger:
        body = json.dumps({"kind": "post-deployment review", "deployment": DEPLOYMENT}, sort_keys=True)
        ledger.begin_loop(loop, "bench-review", body, seed)
        for i in range(0, reviews, 10_000):
            ledger.record_tasks([task for task, *_ in work[i : i + 10_000]], BACKENDS[0])
        for i in range(0, reviews, 2_000):
            ledger.record_answers(loop, BACKENDS[0], work[i : i + 2_000])
        pid = [f"p{i}" for i in range(predictions)]
        version = f"{DEPLOYMENT}-v1"
        reviewed = set(picked.tolist())
        verdict = rng.choice(3, reviews, p=[0.85, 0.12, 0.03])
        rows: dict[Any, list[dict[str, Any]]] = {
            s.pd_models: [{"deployment": DEPLOYMENT, "version": version, "labels_json": json.dumps(INTENTS[:-1]), "parent": None,
                           "n_train": 5000, "n_corrections": 0, "artifact": None, "created_at": T0}],
            s.pd_promotions: [{"deployment": DEPLOYMENT, "seq": 1, "action": "deploy", "version": version, "previous": None,
                               "reason": "initial deployment", "error_current": None, "error_candidate": None, "n_slice": None,
                               "recorded_at": T0}],
            s.pd_predictions: [{"deployment": DEPLOYMENT, "prediction_id": pid[i], "model_version": version, "text": f"request {i}",
                                "features_json": None, "predicted_label": INTENTS[label[i]], "confidence": float(conf[i]),
                                "proba_json": None, "predicted_at": float(when[i]), "feedback": None, "rephrasing": None,
                                "source": "python", "status": "accepted", "reason": None, "recorded_at": float(when[i])}
                               for i in range(predictions)],
            s.pd_triage: [{"deployment": DEPLOYMENT, "prediction_id": pid[i], "policy": "default", "review": i in reviewed,
                           "audit": bool(audit[i]), "priority": float(1 - conf[i]), "fired_json": "[]",
                           "day": dt.datetime.fromtimestamp(when[i], dt.timezone.utc).date().isoformat(), "model_version": version,
                           "recorded_at": float(when[i])} for i in range(predictions)],
            s.pd_reviews: [{"task_key": task.key, "deployment": DEPLOYMENT, "prediction_id": pid[i], "model_version": version,
                            "model_label": INTENTS[label[i]],
                            "verdict": ("confirm", "correct", "out_of_scope")[v],
                            "label": INTENTS[label[i]] if v == 0 else INTENTS[-1] if v == 2 else INTENTS[(label[i] + 1) % 5],
                            "worker": "w", "reviewed_at": float(when[i] + rng.uniform(3600, 2 * 86400))}
                           for (task, *_), i, v in zip(work, picked.tolist(), verdict.tolist())],
        }
        with ledger.engine_.begin() as conn:
            for table, data in rows.items():
                for i in range(0, len(data), 20_000):
                    conn.execute(table.insert(), data[i : i + 20_000])


def build(url: str, args: argparse.Namespace) -> None:
    from benchmarks.ledger_bench import bulk_load, draw
    from clicloop.orchestrator.ledger import Ledger

    with Ledger(url) as ledger:
        tick = time.perf_counter()
        data = draw(args.rows, args.rounds, args.workers, args.seed, ledger)
        log(f"drew {args.rows:,} answers in {time.perf_counter() - tick:.0f}s")
        tick = time.perf_counter()
        bulk_load(ledger, data)
        log(f"bulk-loaded in {time.perf_counter() - tick:.0f}s")
    tick = time.perf_counter()
    add_deployment(url, args.predictions, args.reviews, args.seed)
    log(f"deployment: {args.predictions:,} predictions, {args.reviews:,} reviews in {time.perf_counter() - tick:.0f}s")
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()


def serve(url: str) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    from clicloop.orchestrator.dashboard.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(url), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def measure(base: str, reps: int) -> tuple[dict[str, str], dict[str, float], dict[str, list[float]], dict[str, int]]:
    import httpx

    from clicloop.orchestrator.dashboard.views import VIEWS

    paths = {name: f"/view/{name}" for name in VIEWS} | {"all views (/)": "/", "JSON, all views (/api/views)": "/api/views"}
    cold: dict[str, float] = {}
    samples: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=300) as client:
        for rep in range(reps + 1):
            for name, path in paths.items():
                tick = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - tick
                if response.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
                sizes[name] = len(response.content)
                (cold.__setitem__(name, elapsed) if rep == 0 else samples.setdefault(name, []).append(elapsed))
            last = cold if rep == 0 else {k: v[-1] for k, v in samples.items()}
            log(f"rep {rep}: " + ", ".join(f"{n.split(' ')[0]}={last[n]:.2f}s" for n in paths))
    return paths, cold, samples, sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2000)
    ap.add_argument("--predictions", type=int, default=200_000, help="production predictions of the deployment")
    ap.add_argument("--reviews", type=int, default=20_000, help="of them reviewed (a tenth random audits)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--db", type=Path, default=None, help="SQLite only: keep the big ledger here (built if missing, reused if present)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from benchmarks.ledger_bench import Target

    started = time.perf_counter()
    target = None
    if args.backend == "sqlite" and args.db is not None:
        url = f"sqlite:///{args.db}"
        if not args.db.exists():
            build(url, args)
    else:
        target = Target(args.backend, Path(tempfile.mkdtemp(prefix="dashboard-bench-")), "dashboard")
        url = target.url
        build(url, args)
    try:
        base, server, thread = serve(url)
        paths, cold, samples, sizes = measure(base, args.reps)
        server.should_exit = True
        thread.join(timeout=10)
    finally:
        if target is not None:
            target.drop()
    import sqlite3

    db = f"SQLite {sqlite3.sqlite_version}" if args.backend == "sqlite" else "PostgreSQL (127.0.0.1, default settings)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"{dt.date.today().isoformat()}, {platform.node() or 'host'}: {os.cpu_count()} cores (load average {load:.1f} at the end), "
             f"Python {platform.python_version()}, {db}; {args.rows:,} assignments, {args.rounds} rounds, {args.workers:,} workers, "
             f"a deployment of {args.predictions:,} predictions with {args.reviews:,} reviews; medians of {args.reps} warm "
             f"repetitions; whole run {time.perf_counter() - started:.0f} s.", "",
             "| view | path | first request | median (warm) | spread (min-max) | response | < 2 s? |", "|---|---|---:|---:|---:|---:|:---:|"]
    for name, path in paths.items():
        v = samples[name]
        med = statistics.median(v)
        ok = med < TARGET_S
        lines.append(f"| {name} | `{path}` | {cold[name]:.3f} s | {med:.3f} s | {min(v):.3f}-{max(v):.3f} | {sizes[name] / 1024:,.0f} KiB | "
                     f"{'yes' if ok else '**no**'} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
