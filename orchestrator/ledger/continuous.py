"""Ledger reads and writes of the continuous mode (tables ``cont_versions`` and ``cont_answers``,
migration 0006): model versions, the order answers arrived in, staleness and waiting."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, func, inspect, select

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import insert_ignore

t, a, cv, ca = s.tasks.c, s.assignments.c, s.cont_versions.c, s.cont_answers.c


def record_version(ledger: Ledger, loop: str, round_no: int, answers_seen: int, compute_s: float, clock_s: float | None) -> None:
    """A model version: the answers it was fitted on, its compute seconds, the simulated clock (once per round)."""
    with ledger.engine_.begin() as conn:
        insert_ignore(conn, s.cont_versions, [{"loop": loop, "round_no": round_no, "answers_seen": answers_seen,
                                               "compute_s": compute_s, "clock_s": clock_s, "recorded_at": time.time()}])


def versions(ledger: Ledger, loop: str) -> dict[int, dict[str, Any]]:
    with ledger.engine_.connect() as conn:
        rows = conn.execute(select(s.cont_versions).where(cv.loop == loop))
        return {r.round_no: dict(r._mapping) for r in rows}


def answer_count(ledger: Ledger, loop: str, *, answered_round: int | None = None) -> int:
    """Answers the continuous loop recorded (in one version, with ``answered_round``)."""
    q = select(func.count()).select_from(s.cont_answers).where(ca.loop == loop)
    if answered_round is not None:
        q = q.where(ca.answered_round == answered_round)
    with ledger.engine_.connect() as conn:
        return int(conn.execute(q).scalar_one())


def order_writer(loop: str, round_no: int, keys: list[tuple[str, int]]) -> Any:
    """The ``then`` of :meth:`Ledger.record_answers`: numbers the new answers in the same transaction.
    ``keys``: (task key, chosen round) of each row given to ``record_answers``."""

    def write(conn: Connection, new: list[int]) -> None:
        if not new:
            return
        start = conn.execute(select(func.count()).select_from(s.cont_answers).where(ca.loop == loop)).scalar_one()
        now = time.time()
        insert_ignore(conn, s.cont_answers, [
            {"task_key": keys[i][0], "loop": loop, "seq": int(start) + j, "chosen_round": keys[i][1],
             "answered_round": round_no, "recorded_at": now} for j, i in enumerate(new)])
    return write


def open_tasks(ledger: Ledger, loop: str) -> list[dict[str, Any]]:
    """Tasks created or dispatched, not withdrawn or expired, without an answer (any round)."""
    q = (select(s.tasks).outerjoin(s.assignments, a.task_key == t.key)
         .where(t.loop == loop, t.status.in_(("created", "dispatched")), a.task_key.is_(None)).order_by(t.round_no, t.rank))
    with ledger.engine_.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def answered_items(ledger: Ledger, loop: str, before_seq: int | None = None) -> set[str]:
    """Items with an answer (those recorded before answer number ``before_seq``, when given)."""
    q = select(a.item_id).where(a.loop == loop)
    if before_seq is not None:
        q = q.join(s.cont_answers, ca.task_key == a.task_key).where(ca.seq < before_seq)
    with ledger.engine_.connect() as conn:
        return set(conn.execute(q).scalars())


def staleness(ledger: Ledger, loop: str) -> dict[str, float] | None:
    """Answers between the model version that chose a task and its answer: mean and max, and the
    mean number of versions between; None when the loop did not run in continuous mode (or the
    ledger predates continuous mode)."""
    q = (select(func.count(), func.avg(ca.seq - cv.answers_seen), func.max(ca.seq - cv.answers_seen),
                func.avg(ca.answered_round - ca.chosen_round))
         .select_from(s.cont_answers).join(s.cont_versions, (cv.loop == ca.loop) & (cv.round_no == ca.chosen_round))
         .where(ca.loop == loop))
    with ledger.engine_.connect() as conn:
        if not inspect(conn).has_table(s.cont_answers.name):  # a ledger from before schema 0006, opened read-only
            return None  # (read-only commands never migrate): it ran no continuous loop
        n, mean, most, versions_ = conn.execute(q).one()
    if not n:
        return None
    return {"answers": int(n), "mean": float(mean), "max": float(most), "mean_versions": float(versions_)}


def waiting(ledger: Ledger, loop: str) -> dict[str, float]:
    """Waiting (unpaid, caused by the requester) against active time, over every answer of ``loop``."""
    q = select(func.count(), func.coalesce(func.sum(a.wait_s), 0.0), func.coalesce(func.sum(a.active_s), 0.0)).where(a.loop == loop)
    with ledger.engine_.connect() as conn:
        n, wait, active = conn.execute(q).one()
    return {"answers": int(n), "wait_s": float(wait), "active_s": float(active),
            "share_of_active": float(wait) / float(active) if active else 0.0}
