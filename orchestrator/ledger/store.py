"""The ledger store: open or create a ledger, append facts idempotently, read them back.

Every write is an insert that skips a row whose key exists (loop, round, item, replica), so a
crash and a resume never record an answer, a task or a payment twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, null, select, update
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError

from clicloop.orchestrator.crowd.plausibility import MAX_AMOUNT
from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.credentials import redact_url, scrub
from clicloop.orchestrator.ledger import accounting, reviews, secrecy
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.create import check_or_create, privilege_message
from clicloop.orchestrator.ledger.configdiff import differences
from clicloop.orchestrator.ledger.db import amount_micros, chunks, has_table, insert_ignore, insert_tuples, lock_for_migration, make_engine, micros, num
from clicloop.orchestrator.types import Answer, Consensus, Task

SALT_ENV = secrecy.KEY_ENV


CONFIDENCE_STEP = 0.01  # a label's stored confidence follows its aggregator's to within this


class Ledger:
    """A ledger at a SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://...``).

    Worker ids are stored as keyed pseudonyms; the key comes from ``salt`` (the config's
    ``worker_salt``), else ``$CLICLOOP_WORKER_SALT``, else a key file outside the ledger
    (:mod:`clicloop.orchestrator.ledger.secrecy`), and is looked up when a worker is first recorded.
    """

    def __init__(self, url: str, *, salt: str | None = None):
        self.url = url
        self.salt = salt

    # -- opening -------------------------------------------------------------------------------

    def open(self) -> Ledger:
        """Connect, create or migrate the tables (atomically: see ``ledger/create.py``), refuse a
        foreign or corrupt database."""
        self.engine_ = make_engine(self.url)
        schema_engine = make_engine(self.url, schema_changes=True)
        try:
            for attempt in range(3):
                try:
                    with schema_engine.begin() as conn:
                        lock_for_migration(conn)
                        erased = check_or_create(conn, self.url)
                    if erased:
                        secrecy.flush(self.engine_)
                    return self
                except (IntegrityError, OperationalError) as e:
                    if attempt == 2 or "already exists" not in str(e) and "UNIQUE" not in str(e):
                        raise LedgerError(f"cannot open the ledger at {redact_url(self.url)}: "
                                          f"{scrub(str(getattr(e, 'orig', e)), self.url)}") from e
                except DatabaseError as e:
                    if getattr(e.orig, "sqlstate", None) == "42501":  # PostgreSQL: insufficient privilege
                        raise LedgerError(privilege_message(self.url, scrub(str(e.orig), self.url))) from e
                    raise LedgerError(
                        f"{redact_url(self.url)} is not a usable database ({scrub(str(e.orig), self.url)}); it was left "
                        "untouched. Point 'ledger' at a new file or an existing clicloop ledger."
                    ) from e
        except LedgerError:
            self.engine_.dispose()
            raise
        finally:
            schema_engine.dispose()
        return self  # pragma: no cover - the loop returns or raises

    def close(self) -> None:
        if hasattr(self, "engine_"):
            self.engine_.dispose()

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def secret_key(self) -> str:
        """The ledger's key, kept outside it (:mod:`~clicloop.orchestrator.ledger.secrecy`): it keys
        worker pseudonyms and the opaque task ids sent instead of personal item ids."""
        if "key_" not in self.__dict__:
            self.key_ = secrecy.resolve_key(self.engine_, self.url, self.salt)
        return self.key_

    def pseudonym(self, backend: str, raw_worker_id: str) -> str:
        """The keyed hash (HMAC-SHA256) that stands for a worker in the ledger."""
        return secrecy.pseudonym(self.secret_key(), backend, raw_worker_id)

    # -- loops and rounds ------------------------------------------------------------------------

    def begin_loop(self, name: str, config_hash: str, config_json: str, seed: int, *, register: bool = True,
                   accept: Iterable[str] = ()) -> bool:
        """Register a loop; True if new. A loop resumed with another config (whose hash is neither
        ``config_hash`` nor one of ``accept``) is refused, naming what differs (``register`` False:
        only that check, nothing written)."""
        with self.engine_.begin() as conn:
            row = conn.execute(select(s.loops.c.config_hash, s.loops.c.config_json).where(s.loops.c.name == name)).first()
            if row is None:
                if not register:
                    return True
                insert_ignore(conn, s.loops, [{"name": name, "config_hash": config_hash, "config_json": config_json,
                                               "seed": seed, "created_at": time.time()}])
                return True
        if row.config_hash != config_hash and row.config_hash not in set(accept):
            changed = differences(row.config_json, config_json)
            raise LedgerError(
                f"loop {name!r} already exists in this ledger with a different config"
                f"{f' (it differs in {changed})' if changed else ''}; resuming it would mix two experiments. "
                "Give the new run another loop.name, or pass --restart to replace the loop."
            )
        return False

    def delete_loop(self, name: str) -> None:
        """Remove a loop and everything recorded for it (``clicloop run --restart``)."""
        with self.engine_.begin() as conn:
            for table in (s.labels, s.corrections, s.reviews, s.payments, s.workers, s.assignments, s.tasks, s.rounds,
                          s.cont_versions, s.cont_answers, s.eval_sizes, s.cont_waits, s.unpaid_work, s.published_batches):
                conn.execute(table.delete().where(table.c.loop == name))
            conn.execute(s.loops.delete().where(s.loops.c.name == name))

    def loops(self) -> list[str]:
        with self.engine_.connect() as conn:
            return list(conn.execute(select(s.loops.c.name).order_by(s.loops.c.created_at, s.loops.c.name)).scalars())

    def rounds(self, loop: str) -> list[dict[str, Any]]:
        """The loop's rounds in order, each with ``n_eval``: the evaluation items its metric was
        measured on (None when unknown: no evaluation set, or a ledger from before schema 0007)."""
        r, e = s.rounds.c, s.eval_sizes.c
        with self.engine_.connect() as conn:
            if has_table(conn, s.eval_sizes):
                q = (select(s.rounds, e.n_items.label("n_eval"))
                     .outerjoin(s.eval_sizes, and_(e.loop == r.loop, e.round_no == r.round_no)))
            else:  # read-only commands never migrate an older ledger
                q = select(s.rounds, null().label("n_eval"))
            rows = conn.execute(q.where(r.loop == loop).order_by(r.round_no))
            return [dict(x._mapping) for x in rows]

    def start_round(self, loop: str, round_no: int, model_version: str, n_labeled: int, metric_name: str, metric: float | None,
                    n_eval: int | None = None, eval_digest: str | None = None) -> None:
        """Record a round's model (once: a resumed round keeps its first record); ``n_eval``: the
        evaluation items ``metric`` was measured on, ``eval_digest`` their fingerprint."""
        now = time.time()
        row = {"loop": loop, "round_no": round_no, "model_version": model_version, "n_labeled": n_labeled,
               "metric_name": metric_name, "metric": metric, "status": "started", "stop_reason": None, "recorded_at": now}
        with self.engine_.begin() as conn:
            insert_ignore(conn, s.rounds, [row])
            if metric is not None:
                _eval_size(conn, loop, round_no, n_eval, eval_digest, now)

    def eval_digest(self, loop: str) -> tuple[int, str] | None:
        """``(round, digest)``: the latest round whose metric was measured on an evaluation set with a
        recorded fingerprint (None: none yet, or all from before schema 0010)."""
        e = s.eval_sizes.c
        with self.engine_.connect() as conn:
            row = conn.execute(select(e.round_no, e.digest).where(e.loop == loop, e.digest.is_not(None))
                               .order_by(e.round_no.desc()).limit(1)).first()
        return None if row is None else (int(row.round_no), str(row.digest))

    def record_metric(self, loop: str, round_no: int, metric: float | None, n_eval: int | None = None,
                      eval_digest: str | None = None) -> None:
        """Record the metric of a round started without one (its model was fitted after the round's
        tasks went out); a metric already recorded is kept, as :meth:`start_round` keeps its first."""
        if metric is None:
            return
        with self.engine_.begin() as conn:
            conn.execute(update(s.rounds).where(s.rounds.c.loop == loop, s.rounds.c.round_no == round_no,
                                                s.rounds.c.metric.is_(None)).values(metric=metric))
            _eval_size(conn, loop, round_no, n_eval, eval_digest, time.time())

    def finish_round(self, loop: str, round_no: int, stop_reason: str | None = None) -> None:
        with self.engine_.begin() as conn:
            conn.execute(update(s.rounds).where(s.rounds.c.loop == loop, s.rounds.c.round_no == round_no)
                         .values(status="finished", stop_reason=stop_reason))

    # -- tasks -----------------------------------------------------------------------------------

    def record_tasks(self, tasks: Sequence[Task], backend: str, first_rank: int = 0) -> None:
        now = time.time()
        rows = [{"key": t.key, "loop": t.loop, "round_no": t.round_no, "item_id": t.item_id, "replica": t.replica,
                 "kind": t.kind, "purpose": t.purpose, "backend": backend, "rank": first_rank + i, "status": "created", "recorded_at": now,
                 "reward_micros": None if t.reward is None else amount_micros(t.reward)}
                for i, t in enumerate(tasks)]
        with self.engine_.begin() as conn:
            insert_ignore(conn, s.tasks, rows)

    def tasks(self, loop: str, round_no: int) -> list[dict[str, Any]]:
        with self.engine_.connect() as conn:
            rows = conn.execute(select(s.tasks).where(s.tasks.c.loop == loop, s.tasks.c.round_no == round_no).order_by(s.tasks.c.rank))
            return [dict(r._mapping) for r in rows]

    def item_ids(self, loop: str) -> list[str]:
        """Every item the loop has a task of."""
        with self.engine_.connect() as conn:
            return list(conn.execute(select(s.tasks.c.item_id).where(s.tasks.c.loop == loop).distinct()).scalars())

    def task_items(self, keys: Iterable[str]) -> dict[str, str]:
        """Item id of each known task key (unknown keys are left out)."""
        out: dict[str, str] = {}
        with self.engine_.connect() as conn:
            for chunk in chunks(list(keys), 500):
                out.update(conn.execute(select(s.tasks.c.key, s.tasks.c.item_id).where(s.tasks.c.key.in_(chunk))).all())
        return out

    def set_task_status(self, keys: Iterable[str], status: str) -> None:
        with self.engine_.begin() as conn:
            for chunk in chunks(list(keys), 500):
                conn.execute(update(s.tasks).where(s.tasks.c.key.in_(chunk)).values(status=status))

    # -- answers, payments, reviews, corrections -------------------------------------------------

    def pending(self, loop: str, round_no: int) -> set[str]:
        """Keys of the round's dispatched tasks that have no answer yet (whoever recorded the answers)."""
        t, a = s.tasks.c, s.assignments.c
        query = select(t.key).outerjoin(s.assignments, a.task_key == t.key).where(
            t.loop == loop, t.round_no == round_no, t.status == "dispatched", a.task_key.is_(None))
        with self.engine_.connect() as conn:
            return set(conn.execute(query).scalars())

    def answered(self, loop: str, round_no: int) -> set[str]:
        with self.engine_.connect() as conn:
            a = s.assignments.c
            return set(conn.execute(select(a.task_key).where(a.loop == loop, a.round_no == round_no)).scalars())

    def record_answers(self, loop: str, backend: str, rows: Sequence[tuple[Task, Answer, str, str | None]], *,
                       then: Callable[[Connection, list[int]], None] | None = None) -> list[int]:
        """Commit answers ``(task, answer, status, reason)`` with their reward and fee, in one
        transaction; returns the positions that were new. Raw worker ids become pseudonyms here;
        a worker's qualification time is recorded once per loop and backend. ``then(conn, new)``
        writes what follows from the new answers (a review's verdict) in the same transaction."""
        # The hot write path: rows go to the driver as tuples through one INSERT per table
        # (SQLAlchemy's per-row parameter processing cost more than the database's own work).
        now = time.time()
        with self.engine_.begin() as conn:
            postgres = conn.dialect.name == "postgresql"
            # SQLite: look the keys up first. PostgreSQL: the insert itself returns the new keys (a
            # lookup on a young table without statistics is planned as a scan: quadratic).
            seen = set() if postgres else self._recorded(conn, [task.key for task, *_ in rows])
            entries: list[tuple[int, str, str, Task, Answer]] = []
            answer_rows: list[tuple[Any, ...]] = []
            pseudonyms = self._pseudonyms(backend)
            for i, (task, answer, status, reason) in enumerate(rows):
                key = task.key
                if key in seen:
                    continue
                seen.add(key)
                worker = pseudonyms.get(answer.worker)
                if worker is None:
                    worker = pseudonyms[answer.worker] = self.pseudonym(backend, answer.worker)
                entries.append((i, key, worker, task, answer))
                answer_rows.append((key, task.loop, task.round_no, task.item_id, backend, worker, answer.label, status, reason,
                                    answer.external_id, answer.accepted_at, answer.submitted_at, num(answer.active_s),
                                    num(answer.search_s), num(answer.wait_s), num(answer.returned_s), now))
            inserted = insert_tuples(conn, s.assignments, _ASSIGNMENT_COLUMNS, answer_rows, returning=postgres)
            if inserted is not None:
                entries = [e for e in entries if e[1] in inserted]
            worker_rows: dict[str, tuple[Any, ...]] = {}
            pay_rows: list[tuple[Any, ...]] = []
            for _, key, worker, task, answer in entries:
                if worker not in worker_rows:
                    worker_rows[worker] = (loop, backend, worker, num(answer.qualification_s), task.round_no, now)
                for kind, amount in (("reward", answer.reward), ("fee", answer.fee)):
                    paid = amount_micros(amount)
                    if 0 < paid <= MAX_AMOUNT * s.MICROS:  # a larger amount is quarantined (check_answer), never paid
                        pay_rows.append((f"{key}/{kind}", loop, task.round_no, backend, worker, key, kind, paid,
                                         answer.currency, None, now))
            insert_tuples(conn, s.workers, _WORKER_COLUMNS, list(worker_rows.values()))
            insert_tuples(conn, s.payments, _PAYMENT_COLUMNS, pay_rows)
            if then is not None:
                then(conn, [e[0] for e in entries])
        return [e[0] for e in entries]

    @staticmethod
    def _recorded(conn: Connection, keys: Sequence[str]) -> set[str]:
        """The task keys among ``keys`` that already have an answer."""
        seen: set[str] = set()
        for chunk in chunks(list(keys), 500):
            seen |= set(conn.execute(select(s.assignments.c.task_key).where(s.assignments.c.task_key.in_(chunk))).scalars())
        return seen

    def _pseudonyms(self, backend: str) -> dict[str, str]:
        """Raw worker id -> pseudonym for ``backend``, remembered (the salt is fixed once open)."""
        cache: dict[str, dict[str, str]] = self.__dict__.setdefault("_pseudonym_cache", {})
        if sum(map(len, cache.values())) > 100_000:  # bounded: a ledger can see any number of people
            cache.clear()
        return cache.setdefault(backend, {})

    def pay(self, key: str, loop: str, round_no: int, backend: str, worker: str, kind: str, amount: float,
            currency: str, reason: str | None = None, task_key: str | None = None) -> bool:
        """Record one payment (``worker`` is a pseudonym); ``key`` makes it happen once. True if new."""
        if kind not in s.PAYMENT_KINDS:
            raise LedgerError(f"unknown payment kind {kind!r}; use one of {', '.join(s.PAYMENT_KINDS)}")
        with self.engine_.begin() as conn:
            if conn.execute(select(s.payments.c.key).where(s.payments.c.key == key)).first():
                return False
            insert_ignore(conn, s.payments, [_payment_row(key, loop, round_no, backend, worker, task_key, kind, amount,
                                                          currency, reason, time.time())])
        return True

    def review(self, task_key: str, *, accept: bool, reason: str | None = None, reviewer: str = "requester",
               withhold_pay: bool = False) -> bool:
        """Accept or reject an answer (:func:`clicloop.orchestrator.ledger.reviews.review`)."""
        return reviews.review(self.engine_, task_key, accept=accept, reason=reason, reviewer=reviewer, withhold_pay=withhold_pay)

    def record_corrections(self, loop: str, rows: Sequence[tuple[str, str, str, str | None, str]]) -> int:
        """Record corrections ``(task_key, item_id, event, label, version)``; returns how many were new."""
        now = time.time()
        records = [{"key": f"{key}@{version}", "loop": loop, "task_key": key, "item_id": item, "event": event,
                    "label": label if event == "updated" else None, "recorded_at": now}
                   for key, item, event, label, version in rows]
        with self.engine_.begin() as conn:
            known: set[str] = set()
            for chunk in chunks([r["key"] for r in records], 500):
                known |= set(conn.execute(select(s.corrections.c.key).where(s.corrections.c.key.in_(chunk))).scalars())
            insert_ignore(conn, s.corrections, [r for r in records if r["key"] not in known])
        return sum(r["key"] not in known for r in records)

    def votes(self, loop: str, *, round_no: int | None = None, item_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Usable answers (item_id, worker, label): submitted, not rejected, with the latest
        correction of each applied (a deleted answer drops out)."""
        return accounting.votes(self.engine_, loop, round_no=round_no, item_ids=item_ids)

    def gold_answers(self, loop: str) -> list[dict[str, Any]]:
        """Every submitted answer on a gold task (task_key, item_id, worker, label) with its
        review decision (None when not reviewed yet), in task-key order."""
        a, t, rv = s.assignments.c, s.tasks.c, s.reviews.c
        query = (select(a.task_key, a.item_id, a.worker, a.label, rv.decision).join(s.tasks, t.key == a.task_key)
                 .outerjoin(s.reviews, rv.task_key == a.task_key)
                 .where(a.loop == loop, t.kind == "gold", a.status.in_(("submitted", "skipped"))).order_by(a.task_key))
        with self.engine_.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- labels ----------------------------------------------------------------------------------

    def record_labels(self, loop: str, round_no: int, consensus: Sequence[Consensus]) -> None:
        """The first aggregation of items (revision 0); repeated calls change nothing."""
        now = time.time()
        with self.engine_.begin() as conn:
            insert_ignore(conn, s.labels, [_label_row(loop, round_no, c, 0, now) for c in consensus])

    def revise_labels(self, loop: str, round_no: int, consensus: Sequence[Consensus], withdrawn: Sequence[str] = ()) -> int:
        """Add a revision for each item whose label changed, that got more answers (a relabel,
        with its new confidence), whose confidence moved by more than ``CONFIDENCE_STEP`` (a
        pooled aggregator re-estimating its workers: relabeling and weights read it) or that was
        withdrawn (every answer deleted)."""
        current = self._latest_labels(loop, [c.item_id for c in consensus] + list(withdrawn))
        now, rows = time.time(), []
        for c in consensus:
            rev, label, n_answers, confidence = current.get(c.item_id, (-1, None, 0, 0.0))
            if label != c.label or n_answers != c.n_answers or abs(confidence - c.confidence) > CONFIDENCE_STEP:
                rows.append(_label_row(loop, round_no, c, rev + 1, now))
        for item in withdrawn:
            rev, label, _, _ = current.get(item, (-1, None, 0, 0.0))
            if label is not None:
                rows.append(_label_row(loop, round_no, Consensus(item, None, 0.0, 0), rev + 1, now))  # type: ignore[arg-type]
        with self.engine_.begin() as conn:
            insert_ignore(conn, s.labels, rows)
        return len(rows)

    def _latest_labels(self, loop: str, item_ids: Sequence[str] | None = None) -> dict[str, tuple[int, str | None, int, float]]:
        """Each item's latest label revision: (revision, label, answers, confidence)."""
        lab = s.labels.c
        latest = select(lab.item_id, func.max(lab.revision).label("rev")).where(lab.loop == loop).group_by(lab.item_id)
        if item_ids is not None:
            latest = latest.where(lab.item_id.in_(list(item_ids)))
        latest = latest.subquery()
        query = select(lab.item_id, lab.revision, lab.label, lab.n_answers, lab.confidence).join(
            latest, and_(lab.item_id == latest.c.item_id, lab.revision == latest.c.rev)).where(lab.loop == loop)
        with self.engine_.connect() as conn:
            return {item: (rev, label, n, float(conf)) for item, rev, label, n, conf in conn.execute(query)}

    def labels(self, loop: str) -> dict[str, str]:
        """The current label of every labeled item (latest revision; withdrawn items left out)."""
        return {item: label for item, (_, label, _, _) in self._latest_labels(loop).items() if label is not None}

    def label_confidence(self, loop: str) -> dict[str, float]:
        """The aggregator's confidence in each item's current label."""
        return {item: conf for item, (_, label, _, conf) in self._latest_labels(loop).items() if label is not None}

    # -- accounting (SQL) ------------------------------------------------------------------------

    def spent(self, loop: str, rounds: tuple[int, int] | None = None,
              answered_before: int | None = None) -> dict[str, float]:
        return accounting.spent(self.engine_, loop, rounds, answered_before)

    def effort_by_round(self, loop: str) -> dict[int, dict[str, float]]:
        return accounting.effort_by_round(self.engine_, loop)

    def currency(self, loop: str) -> str | None:
        with self.engine_.connect() as conn:
            return conn.execute(select(s.payments.c.currency).where(s.payments.c.loop == loop)  # the first recorded
                                .order_by(s.payments.c.recorded_at, s.payments.c.key).limit(1)).scalar()


_ASSIGNMENT_COLUMNS = ("task_key", "loop", "round_no", "item_id", "backend", "worker", "label", "status", "reason", "external_id",
                       "accepted_at", "submitted_at", "active_s", "search_s", "wait_s", "returned_s", "recorded_at")
_WORKER_COLUMNS = ("loop", "backend", "worker", "qualification_s", "first_round", "recorded_at")
_PAYMENT_COLUMNS = ("key", "loop", "round_no", "backend", "worker", "task_key", "kind", "amount_micros", "currency", "reason",
                    "recorded_at")


def _payment_row(key: str, loop: str, round_no: int, backend: str, worker: str, task_key: str | None, kind: str,
                 amount: float, currency: str, reason: str | None, now: float) -> dict[str, Any]:
    return {"key": key, "loop": loop, "round_no": round_no, "backend": backend, "worker": worker, "task_key": task_key,
            "kind": kind, "amount_micros": micros(amount), "currency": currency, "reason": reason, "recorded_at": now}


def _label_row(loop: str, round_no: int, c: Consensus, revision: int, now: float) -> dict[str, Any]:
    return {"loop": loop, "item_id": c.item_id, "revision": revision, "label": c.label, "confidence": c.confidence,
            "n_answers": c.n_answers, "round_no": round_no, "recorded_at": now}


def _eval_size(conn: Any, loop: str, round_no: int, n_eval: int | None, digest: str | None, now: float) -> None:
    """The evaluation items a round's metric was measured on, and their fingerprint (once; nothing
    without a count)."""
    if n_eval is not None:
        insert_ignore(conn, s.eval_sizes, [{"loop": loop, "round_no": round_no, "n_items": int(n_eval), "digest": digest,
                                            "recorded_at": now}])
