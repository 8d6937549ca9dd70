"""The ledger store: open or create a ledger, append facts idempotently, read them back.

Every write is an insert that ignores a row whose key exists (loop, round, item, replica), so a
crash and a resume never record an answer, a task or a payment twice.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, case, create_engine, event, func, inspect, select, update
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError

from orchestrator.errors import LedgerError
from orchestrator.ledger import schema as s
from orchestrator.types import Answer, Consensus, Task

SALT_ENV = "CLICLOOP_WORKER_SALT"


class Ledger:
    """A ledger at a SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://...``)."""

    def __init__(self, url: str):
        self.url = url

    # -- opening -------------------------------------------------------------------------------

    def open(self) -> Ledger:
        """Connect, create the tables in an empty database, refuse a foreign one."""
        self.engine_ = _engine(self.url)
        try:
            with self.engine_.begin() as conn:
                self._check_or_create(conn)
                self.salt_ = os.environ.get(SALT_ENV) or conn.execute(
                    select(s.meta.c.value).where(s.meta.c.key == "salt")
                ).scalar_one()
        except DatabaseError as e:
            raise LedgerError(
                f"{_redact(self.url)} is not a usable database ({e.orig}); it was left untouched. "
                "Point 'ledger' at a new file or an existing clicloop ledger."
            ) from e
        except OperationalError as e:
            raise LedgerError(f"cannot open the ledger at {_redact(self.url)}: {e.orig}") from e
        return self

    def _check_or_create(self, conn: Connection) -> None:
        existing = set(inspect(conn).get_table_names())
        ours = {t.name for t in s.TABLES}
        if s.meta.name in existing:
            found = dict(conn.execute(select(s.meta.c.key, s.meta.c.value)).all())
            if found.get("app") != s.APP:
                raise LedgerError(f"{_redact(self.url)} has a {s.meta.name} table that clicloop did not write; refusing to use it")
            if found.get("schema_version") != s.SCHEMA_VERSION:
                raise LedgerError(
                    f"{_redact(self.url)} is a clicloop ledger of schema version {found.get('schema_version')}, "
                    f"this clicloop writes version {s.SCHEMA_VERSION}; upgrade clicloop or use another ledger"
                )
            missing = ours - existing
            if missing:
                raise LedgerError(f"{_redact(self.url)} is a damaged clicloop ledger: tables {sorted(missing)} are missing")
            return
        clash = existing & ours
        if clash or (conn.dialect.name == "sqlite" and existing):
            raise LedgerError(
                f"{_redact(self.url)} already holds tables that are not a clicloop ledger "
                f"({', '.join(sorted(existing)[:5])}); refusing to write into it. Use a new file, database or schema."
            )
        s.metadata.create_all(conn)
        _insert_ignore(
            conn,
            s.meta,
            [
                {"key": "app", "value": s.APP},
                {"key": "schema_version", "value": s.SCHEMA_VERSION},
                {"key": "salt", "value": secrets.token_hex(16)},
            ],
        )

    def close(self) -> None:
        if hasattr(self, "engine_"):
            self.engine_.dispose()

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loops and rounds ------------------------------------------------------------------------

    def begin_loop(self, name: str, config_hash: str, config_json: str, seed: int) -> bool:
        """Register a loop; True if new. A loop resumed with another config is refused."""
        with self.engine_.begin() as conn:
            row = conn.execute(select(s.loops.c.config_hash).where(s.loops.c.name == name)).first()
            if row is None:
                _insert_ignore(
                    conn,
                    s.loops,
                    [{"name": name, "config_hash": config_hash, "config_json": config_json, "seed": seed, "created_at": time.time()}],
                )
                return True
        if row.config_hash != config_hash:
            raise LedgerError(
                f"loop {name!r} already exists in this ledger with a different config; resuming it would mix "
                "two experiments. Give the new run another loop.name, or pass --restart to replace the loop."
            )
        return False

    def delete_loop(self, name: str) -> None:
        """Remove a loop and everything recorded for it (``clicloop run --restart``)."""
        with self.engine_.begin() as conn:
            for table in (s.labels, s.workers, s.assignments, s.tasks, s.rounds, s.loops):
                column = table.c.name if table is s.loops else table.c.loop
                conn.execute(table.delete().where(column == name))

    def loops(self) -> list[str]:
        with self.engine_.connect() as conn:
            return list(conn.execute(select(s.loops.c.name).order_by(s.loops.c.created_at, s.loops.c.name)).scalars())

    def rounds(self, loop: str) -> list[dict[str, Any]]:
        with self.engine_.connect() as conn:
            rows = conn.execute(select(s.rounds).where(s.rounds.c.loop == loop).order_by(s.rounds.c.round_no))
            return [dict(r._mapping) for r in rows]

    def start_round(self, loop: str, round_no: int, model_version: str, n_labeled: int, metric_name: str, metric: float | None) -> None:
        with self.engine_.begin() as conn:
            _insert_ignore(
                conn,
                s.rounds,
                [
                    {
                        "loop": loop, "round_no": round_no, "model_version": model_version, "n_labeled": n_labeled,
                        "metric_name": metric_name, "metric": metric, "status": "started", "stop_reason": None,
                        "recorded_at": time.time(),
                    }
                ],
            )

    def finish_round(self, loop: str, round_no: int, stop_reason: str | None = None) -> None:
        with self.engine_.begin() as conn:
            conn.execute(
                update(s.rounds)
                .where(s.rounds.c.loop == loop, s.rounds.c.round_no == round_no)
                .values(status="finished", stop_reason=stop_reason)
            )

    # -- tasks and answers -----------------------------------------------------------------------

    def record_tasks(self, tasks: Sequence[Task], backend: str) -> None:
        now = time.time()
        rows = [
            {
                "key": t.key, "loop": t.loop, "round_no": t.round_no, "item_id": t.item_id, "replica": t.replica,
                "kind": t.kind, "purpose": t.purpose, "backend": backend, "rank": i, "status": "created",
                "recorded_at": now,
            }
            for i, t in enumerate(tasks)
        ]
        with self.engine_.begin() as conn:
            _insert_ignore(conn, s.tasks, rows)

    def tasks(self, loop: str, round_no: int) -> list[dict[str, Any]]:
        with self.engine_.connect() as conn:
            rows = conn.execute(
                select(s.tasks).where(s.tasks.c.loop == loop, s.tasks.c.round_no == round_no).order_by(s.tasks.c.rank)
            )
            return [dict(r._mapping) for r in rows]

    def mark_dispatched(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        with self.engine_.begin() as conn:
            for chunk in _chunks(keys, 500):
                conn.execute(update(s.tasks).where(s.tasks.c.key.in_(chunk)).values(status="dispatched"))

    def answered(self, loop: str, round_no: int) -> set[str]:
        with self.engine_.connect() as conn:
            rows = conn.execute(
                select(s.assignments.c.task_key).where(s.assignments.c.loop == loop, s.assignments.c.round_no == round_no)
            )
            return set(rows.scalars())

    def record_answers(self, loop: str, backend: str, rows: Sequence[tuple[Task, Answer, str, str | None]]) -> list[int]:
        """Commit answers ``(task, answer, status, reason)``; returns the positions that were new.

        Raw worker ids become salted pseudonyms here; a worker's qualification time is recorded
        once per loop and backend.
        """
        now = time.time()
        with self.engine_.begin() as conn:
            keys = [task.key for task, *_ in rows]
            seen: set[str] = set()
            for chunk in _chunks(keys, 500):
                seen |= set(conn.execute(select(s.assignments.c.task_key).where(s.assignments.c.task_key.in_(chunk))).scalars())
            new = []
            for i, key in enumerate(keys):
                if key not in seen:
                    seen.add(key)
                    new.append(i)
            answer_rows, worker_rows = [], []
            for i in new:
                task, answer, status, reason = rows[i]
                worker = self.pseudonym(backend, answer.worker)
                answer_rows.append(_assignment_row(task, answer, backend, worker, status, reason, now))
                worker_rows.append(
                    {"loop": loop, "backend": backend, "worker": worker, "qualification_s": _num(answer.qualification_s),
                     "first_round": task.round_no, "recorded_at": now}
                )
            _insert_ignore(conn, s.assignments, answer_rows)
            _insert_ignore(conn, s.workers, worker_rows)
        return new

    def pseudonym(self, backend: str, raw_worker_id: str) -> str:
        """The salted hash that stands for a worker in the ledger."""
        digest = hmac.new(self.salt_.encode(), f"{backend}\x00{raw_worker_id}".encode(), hashlib.sha256)
        return digest.hexdigest()[:16]

    def votes(self, loop: str, round_no: int) -> list[dict[str, Any]]:
        cols = s.assignments.c
        with self.engine_.connect() as conn:
            rows = conn.execute(
                select(cols.item_id, cols.worker, cols.label)
                .where(cols.loop == loop, cols.round_no == round_no, cols.status == "submitted")
                .order_by(cols.task_key)
            )
            return [dict(r._mapping) for r in rows]

    # -- labels ----------------------------------------------------------------------------------

    def record_labels(self, loop: str, round_no: int, consensus: Sequence[Consensus]) -> None:
        now = time.time()
        rows = [
            {"loop": loop, "item_id": c.item_id, "label": c.label, "confidence": c.confidence,
             "n_answers": c.n_answers, "round_no": round_no, "recorded_at": now}
            for c in consensus
        ]
        with self.engine_.begin() as conn:
            _insert_ignore(conn, s.labels, rows)

    def labels(self, loop: str) -> dict[str, str]:
        with self.engine_.connect() as conn:
            rows = conn.execute(select(s.labels.c.item_id, s.labels.c.label).where(s.labels.c.loop == loop))
            return dict(rows.all())

    # -- totals (SQL) ----------------------------------------------------------------------------

    def spent(self, loop: str, rounds: tuple[int, int] | None = None) -> dict[str, float]:
        """Answers bought, cost (reward + fee) and human hours, summed in SQL, over all rounds or
        over ``rounds = (first, last)`` inclusive."""
        a, w = s.assignments.c, s.workers.c
        where_a, where_w = [a.loop == loop], [w.loop == loop]
        if rounds is not None:
            where_a += [a.round_no >= rounds[0], a.round_no <= rounds[1]]
            where_w += [w.first_round >= rounds[0], w.first_round <= rounds[1]]
        with self.engine_.connect() as conn:
            row = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(a.reward_micros + a.fee_micros), 0),
                    func.coalesce(func.sum(a.active_s), 0.0),
                    func.coalesce(func.sum(a.search_s + a.wait_s), 0.0),
                ).where(*where_a)
            ).one()
            qual = conn.execute(select(func.coalesce(func.sum(w.qualification_s), 0.0)).where(*where_w)).scalar_one()
        active_h = float(row[2]) / 3600
        return {
            "answers": int(row[0]),
            "cost": int(row[1]) / s.MICROS,
            "active_hours": active_h,
            "total_hours": active_h + (float(row[3]) + float(qual)) / 3600,
        }

    def effort_by_round(self, loop: str) -> dict[int, dict[str, float]]:
        """Per round: answers, reward, fee, active and unpaid seconds, grouped in SQL."""
        a, w = s.assignments.c, s.workers.c
        with self.engine_.connect() as conn:
            rows = conn.execute(
                select(
                    a.round_no,
                    func.count(),
                    func.sum(a.reward_micros),
                    func.sum(a.fee_micros),
                    func.sum(a.active_s),
                    func.sum(a.search_s + a.wait_s),
                    func.sum(case((a.status == "quarantined", 1), else_=0)),
                )
                .where(a.loop == loop)
                .group_by(a.round_no)
            ).all()
            qual = dict(
                conn.execute(
                    select(w.first_round, func.sum(w.qualification_s)).where(w.loop == loop).group_by(w.first_round)
                ).all()
            )
        out: dict[int, dict[str, float]] = {}
        for r, n, reward, fee, active, overhead, quarantined in rows:
            out[r] = {  # PostgreSQL sums come back as Decimal: normalise
                "answers": int(n), "reward": int(reward) / s.MICROS, "fee": int(fee) / s.MICROS, "active_s": float(active),
                "unpaid_s": float(overhead) + float(qual.get(r, 0.0)), "quarantined": int(quarantined or 0),
            }
        return out

    def currency(self, loop: str) -> str | None:
        with self.engine_.connect() as conn:
            return conn.execute(select(s.assignments.c.currency).where(s.assignments.c.loop == loop).limit(1)).scalar()


# -- helpers -------------------------------------------------------------------------------------


def _assignment_row(task: Task, answer: Answer, backend: str, worker: str, status: str, reason: str | None, now: float) -> dict[str, Any]:
    return {
        "task_key": task.key, "loop": task.loop, "round_no": task.round_no, "item_id": task.item_id,
        "backend": backend, "worker": worker, "label": answer.label, "status": status, "reason": reason,
        "active_s": _num(answer.active_s), "search_s": _num(answer.search_s), "wait_s": _num(answer.wait_s),
        "reward_micros": round(_num(answer.reward) * s.MICROS), "fee_micros": round(_num(answer.fee) * s.MICROS),
        "currency": answer.currency, "recorded_at": now,
    }


def _num(value: Any) -> float:
    """A finite, non-negative number, or 0.0 (the loop quarantines such answers with the raw values)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) and v >= 0 else 0.0


def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as e:
        hint = " (PostgreSQL needs: pip install 'clicloop[postgres]')" if "postgres" in url else ""
        raise LedgerError(f"cannot use the ledger URL {_redact(url)}: {e}{hint}") from e
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # durable against a killed process, readers never block
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise LedgerError(f"ledger databases must be SQLite or PostgreSQL, not {name}")
    for chunk in _chunks(rows, 1000):
        conn.execute(insert(table).on_conflict_do_nothing(), chunk)


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _redact(url: str) -> str:
    """The URL without its password."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
