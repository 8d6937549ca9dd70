"""Throughput and idempotency of the prediction-ingest endpoint (``clicloop serve ingest``).

    .venv/bin/python benchmarks/postdeploy_ingest.py --records 40000 --batch 500 --concurrency 4 \\
        --backends sqlite,postgresql --out /tmp/postdeploy_ingest.json

For each ledger backend, a fresh ledger (SQLite file, or a new schema of the PostgreSQL database
at ``--pg``) and the real server as a user starts it (a ``clicloop serve ingest`` subprocess on
127.0.0.1). Clients post pre-encoded JSON batches over HTTP from ``--concurrency`` threads:

1. first pass: every record once -> predictions per second (wall clock, first request to last answer);
2. retries: every batch sent again, twice at once from two threads (a client retrying while its
   first attempt is still in flight) -> predictions per second, and the answers must report no new
   record;
3. check: the ledger holds exactly ``--records`` predictions, the answers' ``accepted`` sum to it.

Records look like a deployed intent classifier's: id, text, label, confidence, 5 class
probabilities, model version, ISO time; 2% of them user-flagged. Seeded.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

LABELS = [f"intent_{i:03d}" for i in range(150)]
WORDS = ["play", "song", "weather", "tomorrow", "transfer", "money", "book", "flight", "timer", "alarm", "what", "is", "my"]


def make_records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        top = rng.choice(len(LABELS), 5, replace=False)
        p = rng.dirichlet(np.ones(5))
        proba = {LABELS[j]: float(v) for j, v in zip(top, p / p.sum())}
        label = max(proba, key=proba.get)  # type: ignore[arg-type]
        rec = {"id": f"req-{seed}-{i:08d}", "model_version": "v1", "predicted_label": label,
               "text": " ".join(rng.choice(WORDS, 6)), "probabilities": proba,
               "time": f"2026-03-0{1 + i % 7}T{i % 24:02d}:00:00Z"}
        if rng.random() < 0.02:
            rec["feedback"] = "thumbs_down"
        out.append(rec)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``clicloop serve ingest`` in a subprocess (started and stopped by this benchmark)."""

    def __init__(self, ledger: str, token: str):
        self.port = free_port()
        env = {**os.environ, "CLICLOOP_INGEST_TOKEN": token}
        self.proc = subprocess.Popen([sys.executable, "-m", "clicloop", "serve", "ingest", "--ledger", ledger,
                                      "--deployment", "bench", "--port", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("the server did not come up in 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def post_all(url: str, token: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[dict[str, Any]]]:
    """Post every body from ``concurrency`` threads; (seconds, answers)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    clients = [httpx.Client(base_url=url, headers=headers, timeout=120) for _ in range(concurrency)]

    def send(i: int) -> dict[str, Any]:
        for attempt in range(5):
            try:
                answer = clients[i % concurrency].post("/v1/predictions", content=bodies[i])
            except httpx.TransportError:
                time.sleep(0.5 * (attempt + 1))  # a real client retries; idempotency makes that safe
                continue
            answer.raise_for_status()
            return answer.json()
        raise RuntimeError(f"batch {i} failed 5 times")

    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(send, range(len(bodies))))
    seconds = time.perf_counter() - t
    for c in clients:
        c.close()
    return seconds, answers


def bench(backend: str, args: argparse.Namespace, records: list[dict[str, Any]]) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.postdeploy import DeploymentStore, Ingestor

    token = secrets.token_hex(20)
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'ingest.db'}"
        else:
            schema = f"clicloop_ingest_bench_{secrets.token_hex(4)}"
            with create_engine(args.pg).begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            url = f"{args.pg}?options=-csearch_path%3D{schema}"
        try:
            with Ledger(url) as ledger:
                DeploymentStore(ledger, "bench").register_version("v1", LABELS)
            bodies = [json.dumps(records[i:i + args.batch]).encode() for i in range(0, len(records), args.batch)]
            server = Server(url, token)
            try:
                server.wait()
                first_s, first = post_all(server.url, token, bodies, args.concurrency)
                retry_s, retried = post_all(server.url, token, [b for b in bodies for _ in range(2)], args.concurrency)
            finally:
                server.stop()
            with Ledger(url) as ledger:
                counts = Ingestor(DeploymentStore(ledger, "bench")).counts()
        finally:
            if schema is not None:
                with create_engine(args.pg).begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    n = len(records)
    return {"backend": backend, "records": n, "batch": args.batch, "concurrency": args.concurrency,
            "first_per_s": n / first_s, "first_s": first_s, "retry_per_s": 2 * n / retry_s, "retry_s": retry_s,
            "accepted_first": sum(a["accepted"] for a in first), "accepted_retries": sum(a["accepted"] for a in retried),
            "duplicates_retries": sum(a["duplicates"] for a in retried), "rows": counts["accepted"],
            "idempotent": counts["accepted"] == n and sum(a["accepted"] for a in first) == n
            and sum(a["accepted"] for a in retried) == 0}


def markdown(results: list[dict[str, Any]], target: float) -> str:
    lines = ["| ledger | records | batch | client threads | first pass /s | retries (each batch twice at once) /s "
             "| rows after retries | idempotent |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['records']:,} | {r['batch']} | {r['concurrency']} | {r['first_per_s']:,.0f} | "
                     f"{r['retry_per_s']:,.0f} | {r['rows']:,} | {'yes' if r['idempotent'] else 'NO'} |")
    met = all(r["first_per_s"] >= target and r["idempotent"] for r in results)
    return "\n".join(lines) + f"\n\nTarget >= {target:,.0f} predictions/s and idempotent: {'met' if met else 'NOT met'}.\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=500, help="records per request")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg", default=os.environ.get("CLICLOOP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--target", type=float, default=2000.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    records = make_records(args.records, args.seed)
    results = []
    for backend in args.backends.split(","):
        results.append(bench(backend, args, records))
        r = results[-1]
        print(f"{backend}: {r['first_per_s']:,.0f}/s first pass, {r['retry_per_s']:,.0f}/s retries, "
              f"idempotent: {r['idempotent']}", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))
    print(markdown(results, args.target))


if __name__ == "__main__":
    main()
