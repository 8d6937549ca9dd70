"""Ledger throughput and accounting latency, on SQLite and on the real PostgreSQL (issue #3 targets).

    .venv/bin/python benchmarks/ledger_bench.py --rows 1000000 --batch 1000 \\
        --backends sqlite,postgresql --out /tmp/ledger_bench.md

Two parts, each measured side by side (the backends and operations alternate inside every
repetition, so a noisy machine slows them alike); every figure is a median over ``--reps``:

* write: ``--write-rows`` answers recorded through ``Ledger.record_answers`` (the real write path:
  assignments + payments + workers, one transaction per batch of ``--batch``) into a fresh ledger
  per repetition, then the same into the big ledger of the read part (it grows by that much each
  repetition). Target: >= 20,000 answers/s on SQLite, >= 5,000/s on PostgreSQL. SQLite runs in
  the ledger's WAL mode with synchronous=NORMAL (a commit survives a killed process);
  PostgreSQL with the server's settings (fsync and synchronous_commit on: a commit survives a
  power cut). ``--sqlite-checkpoints ledger,1000`` repeats the SQLite writes with SQLite's own
  ``wal_autocheckpoint`` of 1,000 pages beside the ledger's setting, in the same repetitions.
* read: a realistic ledger of ``--rows`` assignments over ``--rounds`` rounds, ``--workers``
  workers on two backends, a reward and a fee per answer, reviews on 2% (a quarter rejected, half
  of those with their pay reversed), corrections on 1%, a task per answer plus expired tasks, a
  first-aggregation label per submitted item, adjustment payments for some workers; all drawn
  from a seeded numpy Generator and bulk-loaded (rows shaped exactly like ``Ledger``'s: the
  script checks the column types against rows written by ``record_answers``). Every accounting
  query then runs over it. Target: < 1 s each on SQLite (PostgreSQL figures for information).
  PostgreSQL gets an ANALYZE after the load (what autovacuum does soon after); SQLite gets none
  (clicloop never runs one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "ledger-bench")  # same pseudonyms in every run

from sqlalchemy import create_engine, event, text  # noqa: E402

from clicloop.orchestrator.ledger import Ledger  # noqa: E402
from clicloop.orchestrator.ledger import accounting  # noqa: E402
from clicloop.orchestrator.ledger import schema as s  # noqa: E402
from clicloop.orchestrator.types import Answer, Task  # noqa: E402

PG_BASE = os.environ.get("CLICLOOP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LOOP = "bench"
BACKENDS = ("simulated", "prolific")
PURPOSE = "Sort customer e-mails by topic so that they reach the right team faster."
CLASSES = tuple(f"topic{i}" for i in range(10))
REASONS = ("answer contradicts the gold item", "free-text field left empty", "same answer to every item",
           "submitted in under a second", "label outside the instructions")
T0 = 1_767_225_600.0  # 2026-01-01
WRITE_TARGET = {"sqlite": 20_000, "postgresql": 5_000}
READ_TARGET_S = 1.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the ledger's databases ------------------------------------------------------------------------


class Target:
    """A fresh, empty ledger database: a SQLite file or a PostgreSQL schema (dropped by ``drop``)."""

    def __init__(self, backend: str, workdir: Path, tag: str):
        self.backend = backend
        if backend == "sqlite":
            self.path = workdir / f"{tag}-{secrets.token_hex(3)}.db"
            self.url = f"sqlite:///{self.path}"
        else:
            self.schema = f"clicloop_bench_{tag}_{secrets.token_hex(3)}"
            with create_engine(PG_BASE).begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {self.schema}"))
            self.url = f"{PG_BASE}?options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        else:
            engine = create_engine(PG_BASE)
            with engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
            engine.dispose()


def set_checkpoint(ledger: Ledger, pages: str) -> None:
    """Run the SQLite ledger's next writes with ``wal_autocheckpoint = pages`` (``ledger``: its own
    setting): a connect hook applied after the ledger's own pragmas, then a fresh connection."""
    engine = ledger.engine_
    if not hasattr(engine, "_bench_checkpoint"):
        def hook(dbapi_conn: Any, _record: Any) -> None:
            if engine._bench_checkpoint != "ledger":  # type: ignore[attr-defined]
                dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={int(engine._bench_checkpoint)}")  # type: ignore[attr-defined]
        event.listen(engine, "connect", hook)
    engine._bench_checkpoint = pages  # type: ignore[attr-defined]
    engine.dispose()
    with engine.connect() as conn:
        got = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    if pages != "ledger" and got != int(pages):
        raise SystemExit(f"wal_autocheckpoint is {got}, not {pages}")


# -- a realistic ledger, drawn from a seeded Generator ------------------------------------------------


def draw(rows: int, rounds: int, workers: int, seed: int, ledger: Ledger) -> dict[str, list[tuple]]:
    """Rows of every table (tuples in the tables' column order) for one loop of ``rows`` answers."""
    rng = np.random.default_rng(seed)
    n = rows
    round_no = np.sort(rng.integers(0, rounds, n))
    round_no[:rounds] = np.arange(rounds)  # every round has answers
    round_no.sort()
    w_backend = (rng.random(workers) < 0.25).astype(int)  # a quarter of the people work on the 2nd backend
    w_weight = rng.lognormal(0, 1.2, workers)  # a few workers do much of the work
    worker = rng.choice(workers, n, p=w_weight / w_weight.sum())
    backend = w_backend[worker]
    pseud = [ledger.pseudonym(BACKENDS[w_backend[j]], f"worker-{j}") for j in range(workers)]
    status = rng.choice(3, n, p=[0.97, 0.02, 0.01])  # submitted, skipped, quarantined
    label = rng.integers(0, len(CLASSES), n)
    active = rng.lognormal(np.log(8.0), 0.6, n)
    search = rng.exponential(3.0, n)
    wait = np.where(rng.random(n) < 0.3, rng.exponential(5.0, n), 0.0)
    returned = np.where(rng.random(n) < 0.03, rng.exponential(20.0, n), 0.0)
    accepted = T0 + round_no * 3600.0 + rng.uniform(0, 3000, n)
    submitted = accepted + active
    recorded = submitted + rng.uniform(0.1, 30, n)
    reward = np.where(backend == 0, 40_000, 55_000)  # micros
    fee = np.where(backend == 0, 8_000, 18_150)  # 20% and 33%
    rank = np.arange(n) - np.searchsorted(round_no, round_no)  # position inside its round

    keys = [f"{LOOP}/{r}/item{i}/0" for i, r in enumerate(round_no.tolist())]
    rl, wl, bl, sl, ll = round_no.tolist(), worker.tolist(), backend.tolist(), status.tolist(), label.tolist()
    al, sel, wal, rtl = active.tolist(), search.tolist(), wait.tolist(), returned.tolist()
    accl, subl, recl, rwl, fel, rkl = accepted.tolist(), submitted.tolist(), recorded.tolist(), reward.tolist(), fee.tolist(), rank.tolist()
    st_names = ("submitted", "skipped", "quarantined")
    out: dict[str, list[tuple]] = {}
    out["assignments"] = [
        (keys[i], LOOP, rl[i], f"item{i}", BACKENDS[bl[i]], pseud[wl[i]], None if sl[i] == 1 else CLASSES[ll[i]], st_names[sl[i]],
         "invalid times or pay (nan, 0.0, 0.0, 0.0, 0.0, 0.04, 0.008)" if sl[i] == 2 else None, f"ext-{i}",
         accl[i], subl[i], al[i], sel[i], wal[i], rtl[i], recl[i])
        for i in range(n)
    ]
    out["tasks"] = [
        (keys[i], LOOP, rl[i], f"item{i}", 0, "label", PURPOSE, BACKENDS[bl[i]], rkl[i], None, "dispatched", accl[i] - 60.0)
        for i in range(n)
    ]
    n_expired = max(1, n // 200)  # tasks nobody answered before the round's deadline
    exp_rounds = np.sort(rng.integers(0, rounds, n_expired)).tolist()
    out["tasks"] += [(f"{LOOP}/{r}/item{n + j}/0", LOOP, r, f"item{n + j}", 0, "label", PURPOSE, BACKENDS[0], 10**6 + j, None,
                      "expired", T0 + r * 3600.0) for j, r in enumerate(exp_rounds)]
    pay = []
    for i in range(n):
        b, wk = BACKENDS[bl[i]], pseud[wl[i]]
        pay.append((f"{keys[i]}/reward", LOOP, rl[i], b, wk, keys[i], "reward", rwl[i], "EUR", None, recl[i]))
        pay.append((f"{keys[i]}/fee", LOOP, rl[i], b, wk, keys[i], "fee", fel[i], "EUR", None, recl[i]))
    first_round = np.full(workers, rounds, dtype=np.int64)
    np.minimum.at(first_round, worker, round_no)
    active_workers = np.flatnonzero(first_round < rounds)
    qual = rng.uniform(30, 600, workers)
    out["workers"] = [(LOOP, BACKENDS[w_backend[j]], pseud[j], float(qual[j]), int(first_round[j]),
                      float(T0 + first_round[j] * 3600.0))
                      for j in active_workers.tolist()]
    # adjustment payments: a top-up for about 5% of the people, in the last round
    for j in rng.choice(active_workers, max(1, active_workers.size // 20), replace=False).tolist():
        pay.append((f"{LOOP}/adjustment/{BACKENDS[w_backend[j]]}/{pseud[j]}/{rounds - 1}", LOOP, rounds - 1, BACKENDS[w_backend[j]],
                    pseud[j], None, "adjustment", int(rng.integers(10_000, 2_000_000)), "EUR", "below the wage floor on total time",
                    T0 + rounds * 3600.0))
    # reviews on 2% of the submitted answers; a quarter rejected (with a reason), half of those with pay reversed
    sub = np.flatnonzero(status == 0)
    reviewed = np.sort(rng.choice(sub, int(0.02 * n), replace=False))
    reject = rng.random(reviewed.size) < 0.25
    withhold = reject & (rng.random(reviewed.size) < 0.5)
    reason = rng.integers(0, len(REASONS), reviewed.size)
    out["reviews"] = []
    for i, rej, wh, why in zip(reviewed.tolist(), reject.tolist(), withhold.tolist(), reason.tolist()):
        out["reviews"].append((keys[i], LOOP, "reject" if rej else "accept", REASONS[why] if rej else None, "requester", recl[i] + 600))
        if wh:
            b, wk = BACKENDS[bl[i]], pseud[wl[i]]
            for kind, amount in (("reward", rwl[i]), ("fee", fel[i])):
                pay.append((f"{keys[i]}/{kind}/reversal", LOOP, rl[i], b, wk, keys[i], kind, -amount, "EUR",
                            f"rejected: {REASONS[why]}", recl[i] + 600))
    out["payments"] = pay
    # corrections on 1% of the submitted answers: 80% a new label, 20% deleted
    corrected = np.sort(rng.choice(sub, int(0.01 * n), replace=False))
    deleted = rng.random(corrected.size) < 0.2
    new_label = rng.integers(0, len(CLASSES), corrected.size)
    out["corrections"] = [
        (f"{keys[i]}@2026-02-01T00:00:00Z", LOOP, keys[i], f"item{i}", "deleted" if d else "updated", None if d else CLASSES[lb],
         recl[i] + 86_400)
        for i, d, lb in zip(corrected.tolist(), deleted.tolist(), new_label.tolist())
    ]
    # labels: first aggregation of every submitted item, a revision for each corrected one
    out["labels"] = [(LOOP, f"item{i}", 0, CLASSES[ll[i]], 1.0, 1, rl[i], recl[i] + 1) for i in sub.tolist()]
    out["labels"] += [(LOOP, f"item{i}", 1, None if d else CLASSES[lb], 0.0 if d else 1.0, 0 if d else 1, rounds - 1, recl[i] + 86_401)
                      for i, d, lb in zip(corrected.tolist(), deleted.tolist(), new_label.tolist())]
    metric = 0.55 + 0.40 * (1 - np.exp(-np.arange(rounds) / (rounds / 4)))
    out["rounds"] = [(LOOP, r, f"{LOOP}-r{r}", int(np.searchsorted(round_no, r)), "accuracy", float(metric[r]), "finished", None,
                      T0 + r * 3600.0) for r in range(rounds)]
    return out


def bulk_load(ledger: Ledger, data: dict[str, list[tuple]]) -> None:
    """Insert the drawn rows: executemany on SQLite, COPY on PostgreSQL, one transaction."""
    engine = ledger.engine_
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        for name, rows in data.items():
            table = s.metadata.tables[name]
            cols = [c.name for c in table.columns]
            if engine.dialect.name == "sqlite":
                quoted = ", ".join(f'"{c}"' for c in cols)
                raw.executemany(f"INSERT INTO {name} ({quoted}) VALUES ({', '.join('?' * len(cols))})", rows)
            else:
                quoted = ", ".join(f'"{c}"' for c in cols)
                with raw.cursor() as cur, cur.copy(f"COPY {name} ({quoted}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO loops (name, config_hash, config_json, seed, created_at) VALUES "
                          "(:n, 'bench', :c, 0, :t)"), {"n": LOOP, "c": f'{{"loop": {{"purpose": "{PURPOSE}"}}}}', "t": T0})
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


def check_shapes(target_dir: Path, data: dict[str, list[tuple]]) -> None:
    """The bulk rows have the columns and value types of rows that ``record_answers`` writes."""
    t = Target("sqlite", target_dir, "shape")
    try:
        with Ledger(t.url) as ledger:
            rows = write_rows(LOOP, 3, 2, seed=1)
            ledger.record_answers(LOOP, BACKENDS[0], rows)
            with ledger.engine_.connect() as conn:
                for name in ("assignments", "payments", "workers"):
                    real = conn.execute(text(f"SELECT * FROM {name} LIMIT 1")).one()
                    bulk = data[name][0]
                    got = [type(v).__name__ for v in bulk]
                    want = [type(v).__name__ for v in real]
                    if len(real) != len(bulk) or any(g != w_ and "NoneType" not in (g, w_) for g, w_ in zip(got, want)):
                        raise SystemExit(f"bulk {name} rows {got} are not shaped like the ledger's {want}")
    finally:
        t.drop()


# -- write ------------------------------------------------------------------------------------------


def write_rows(loop: str, n: int, workers: int, seed: int, round_size: int = 1000) -> list[tuple[Task, Answer, str, str | None]]:
    """``n`` answers as the loop hands them to ``record_answers``: (task, answer, status, reason)."""
    rng = np.random.default_rng(seed)
    who = rng.integers(0, workers, n).tolist()
    lab = rng.integers(0, len(CLASSES), n).tolist()
    act = rng.lognormal(np.log(8.0), 0.6, n).tolist()
    sea = rng.exponential(3.0, n).tolist()
    out = []
    for i in range(n):
        r = i // round_size
        task = Task(f"{loop}/{r}/item{i}/0", loop, r, f"item{i}", 0, PURPOSE, CLASSES)
        ans = Answer(task.key, f"worker-{who[i]}", CLASSES[lab[i]], active_s=act[i], reward=0.04, fee=0.008, currency="EUR",
                     search_s=sea[i], qualification_s=120.0, accepted_at=T0 + i, submitted_at=T0 + i + act[i], external_id=f"ext-{i}")
        out.append((task, ans, "submitted", None))
    return out


def time_writes(ledger: Ledger, loop: str, rows: list[tuple[Task, Answer, str, str | None]], batch: int) -> float:
    """Seconds to record ``rows`` in batches of ``batch`` (one transaction each); checks they all landed.
    Their tasks are recorded first, untimed, as the loop does before it dispatches them."""
    for i in range(0, len(rows), 10_000):
        ledger.record_tasks([task for task, *_ in rows[i : i + 10_000]], BACKENDS[0])
    t = time.perf_counter()
    recorded = 0
    for i in range(0, len(rows), batch):
        recorded += len(ledger.record_answers(loop, BACKENDS[0], rows[i : i + batch]))
    elapsed = time.perf_counter() - t
    if recorded != len(rows):
        raise SystemExit(f"record_answers recorded {recorded} of {len(rows)} answers")
    return elapsed


# -- read -------------------------------------------------------------------------------------------


def read_ops(rounds: int) -> list[tuple[str, Callable[[Ledger], Any]]]:
    from clicloop.orchestrator.reporting.laborcard import labor_card
    from clicloop.orchestrator.ledger.verify import verify
    from clicloop.orchestrator.reporting.report import build_report

    def checked_verify(ledger: Ledger) -> Any:
        bad = verify(ledger)
        if bad:
            raise SystemExit(f"the benchmark ledger fails verify: {bad}")
        return bad

    last = f"{LOOP}-r{rounds - 1}"
    return [
        ("Ledger.spent", lambda L: L.spent(LOOP)),
        ("Ledger.spent (rounds 0..r-1, the loop's budget)", lambda L: L.spent(LOOP, (0, rounds - 2))),
        ("Ledger.effort_by_round", lambda L: L.effort_by_round(LOOP)),
        ("accounting.by_worker", lambda L: accounting.by_worker(L.engine_, LOOP)),
        ("accounting.by_backend", lambda L: accounting.by_backend(L.engine_, LOOP)),
        ("accounting.unpaid_by_kind", lambda L: accounting.unpaid_by_kind(L.engine_, LOOP)),
        ("report.build_report", lambda L: build_report(L, LOOP)),
        (f"laborcard.labor_card ({last})", lambda L: labor_card(L, last)),
        ("verify.verify", checked_verify),
    ]


# -- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="assignments in the read ledger")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=1000, help="answers per record_answers call (one transaction)")
    ap.add_argument("--write-rows", type=int, default=50_000, help="answers recorded per write repetition")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of every measurement (the median is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sqlite-checkpoints", default="ledger",
                    help="comma-separated wal_autocheckpoint settings for the SQLite writes, side by side: "
                         "'ledger' (the ledger's own) and/or page counts, e.g. ledger,1000")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: write, read")
    ap.add_argument("--dir", type=Path, default=None, help="where SQLite files go (default: a temporary directory)")
    ap.add_argument("--verbose", action="store_true", help="log every timing")
    ap.add_argument("--out", type=Path, default=None, help="write the results as a markdown table here")
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in WRITE_TARGET:
            ap.error(f"unknown backend {b!r}: use sqlite and/or postgresql")
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: list[dict[str, Any]] = []  # backend, op, rows, samples, kind (rate | seconds)
    big: dict[str, tuple[Target, Ledger]] = {}
    try:
        if "read" not in skip:
            for b in backends:
                t = Target(b, workdir, "read")
                ledger = Ledger(t.url).open()
                big[b] = (t, ledger)
                tick = time.perf_counter()
                data = draw(args.rows, args.rounds, args.workers, args.seed, ledger)
                log(f"{b}: drew {args.rows:,} answers ({sum(map(len, data.values())):,} rows in all) "
                    f"in {time.perf_counter() - tick:.1f}s")
                if b == backends[0]:
                    check_shapes(workdir, data)
                tick = time.perf_counter()
                bulk_load(ledger, data)
                log(f"{b}: bulk-loaded in {time.perf_counter() - tick:.1f}s")
                del data

        if "write" not in skip:
            rows = write_rows(LOOP, args.write_rows, args.workers, args.seed + 1)
            samples: dict[tuple[str, str], list[float]] = {}
            variants = [(b, v) for b in backends
                        for v in ([c.strip() for c in args.sqlite_checkpoints.split(",") if c.strip()] if b == "sqlite" else ["-"])]
            for rep in range(args.reps):
                for b, variant in variants:
                    name = b if variant in ("-", "ledger") else f"{b} (wal_autocheckpoint={variant})"
                    t = Target(b, workdir, "write")
                    try:
                        with Ledger(t.url) as ledger:
                            if b == "sqlite":
                                set_checkpoint(ledger, variant)
                            ledger.begin_loop(LOOP, "bench", "{}", 0)
                            sec = time_writes(ledger, LOOP, rows, args.batch)
                    finally:
                        t.drop()
                    samples.setdefault((name, "fresh"), []).append(args.write_rows / sec)
                    log(f"write rep {rep + 1}/{args.reps} {name} fresh ledger: {args.write_rows / sec:,.0f} answers/s")
                    if b in big:
                        _, ledger = big[b]
                        if b == "sqlite":
                            set_checkpoint(ledger, variant)
                        loop = f"{LOOP}-w{rep}-{variant}"
                        ledger.begin_loop(loop, "bench", "{}", 0)
                        grown = write_rows(loop, args.write_rows, args.workers, args.seed + 1)
                        sec = time_writes(ledger, loop, grown, args.batch)
                        samples.setdefault((name, "big"), []).append(args.write_rows / sec)
                        log(f"write rep {rep + 1}/{args.reps} {name} into the {args.rows:,}-answer ledger: "
                            f"{args.write_rows / sec:,.0f} answers/s")
                        if b == "sqlite":
                            set_checkpoint(ledger, "ledger")
            for (b, where), vals in samples.items():
                op = (f"record_answers, batches of {args.batch:,}, fresh ledger" if where == "fresh" else
                      f"record_answers, batches of {args.batch:,}, into the {args.rows:,}-answer ledger")
                results.append({"backend": b, "op": op, "rows": args.write_rows, "samples": vals, "kind": "rate",
                                "target": WRITE_TARGET[b.split(" ")[0]]})

        if "read" not in skip:
            ops = read_ops(args.rounds)
            samples_r: dict[tuple[str, str], list[float]] = {}
            for rep in range(args.reps):
                for name, fn in ops:
                    for b in backends:
                        ledger = big[b][1]
                        tick = time.perf_counter()
                        fn(ledger)
                        samples_r.setdefault((b, name), []).append(time.perf_counter() - tick)
                        if args.verbose:
                            log(f"  {b} {name}: {samples_r[(b, name)][-1]:.3f}s")
                log(f"read rep {rep + 1}/{args.reps}: " + ", ".join(
                    f"{name.split(' ')[0]}[{b[:2]}]={v[-1]:.3f}s" for (b, name), v in samples_r.items()))
            for b in backends:
                for name, _ in ops:
                    results.append({"backend": b, "op": name, "rows": args.rows, "samples": samples_r[(b, name)],
                                    "kind": "seconds", "target": READ_TARGET_S if b == "sqlite" else None})
    finally:
        for t, ledger in big.values():
            ledger.close()
            t.drop()

    total = time.perf_counter() - started
    table = render(results, args, total)
    print(table)
    if args.out:
        args.out.write_text(table)
        log(f"wrote {args.out}")
    return 0


def render(results: list[dict[str, Any]], args: argparse.Namespace, total: float) -> str:
    lines = [
        f"{dt.date.today().isoformat()}, {platform.node() or 'host'}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {__import__('sqlite3').sqlite_version}; medians of {args.reps} repetitions; whole run {total:.0f} s.",
        "",
        "| backend | operation | rows | median | spread (min-max) | target | met? |",
        "|---|---|---:|---:|---:|---:|:---:|",
    ]
    for r in results:
        med, lo, hi = statistics.median(r["samples"]), min(r["samples"]), max(r["samples"])
        if r["kind"] == "rate":
            value, spread = f"{med:,.0f} answers/s", f"{lo:,.0f}-{hi:,.0f}"
            target = f">= {r['target']:,}/s"
            met = "yes" if med >= r["target"] else "**no**"
        else:
            value, spread = f"{med:.3f} s", f"{lo:.3f}-{hi:.3f}"
            target = f"< {r['target']:.0f} s" if r["target"] else "-"
            met = "-" if r["target"] is None else ("yes" if med < r["target"] else "**no**")
        lines.append(f"| {r['backend']} | {r['op']} | {r['rows']:,} | {value} | {spread} | {target} | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
