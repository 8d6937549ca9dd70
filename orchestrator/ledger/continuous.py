"""Ledger reads and writes of the continuous mode (tables ``cont_versions`` and ``cont_answers``,
migration 0006): model versions, the order answers arrived in, staleness and waiting."""

from __future__ import annotations

import statistics
import time
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, select

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import amount_micros, insert_ignore
from clicloop.orchestrator.ledger.money import from_micros

t, a, cv, ca = s.tasks.c, s.assignments.c, s.cont_versions.c, s.cont_answers.c


def record_version(ledger: Ledger, loop: str, round_no: int, answers_seen: int, compute_s: float, clock_s: float | None,
                   price: Decimal | None = None, priced: bool = False) -> None:
    """A model version: the answers it was fitted on, its compute seconds, the simulated clock and,
    when the loop prices tasks (``priced``), the reward it offers (None: the backend's own); once per round."""
    price_micros = (-1 if price is None else amount_micros(price)) if priced else None
    with ledger.engine_.begin() as conn:
        insert_ignore(conn, s.cont_versions, [{"loop": loop, "round_no": round_no, "answers_seen": answers_seen,
                                               "compute_s": compute_s, "clock_s": clock_s, "recorded_at": time.time(),
                                               "price_micros": price_micros}])


def version_price(ledger: Ledger, loop: str, round_no: int) -> tuple[bool, Decimal | None]:
    """``(recorded, price)``: whether version ``round_no`` recorded the reward it offers, and that
    reward (None: the backend's own)."""
    with ledger.engine_.connect() as conn:
        micros = conn.execute(select(cv.price_micros).where(cv.loop == loop, cv.round_no == round_no)).scalar_one_or_none()
    if micros is None:
        return False, None
    return True, None if micros < 0 else from_micros(micros)


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


def nth_answer_seq(ledger: Ledger, loop: str, answered_round: int, n: int) -> int | None:
    """The ``seq`` of the ``n``-th answer (1-based) recorded while version ``answered_round`` was
    current; None when fewer were."""
    q = (select(ca.seq).where(ca.loop == loop, ca.answered_round == answered_round)
         .order_by(ca.seq).offset(max(n - 1, 0)).limit(1))
    with ledger.engine_.connect() as conn:
        found = conn.execute(q).scalar_one_or_none()
    return None if found is None else int(found)


def answer_rate(ledger: Ledger, loop: str, before_seq: int, last: int = 40) -> float | None:
    """Answers per second over the ``last`` answers recorded before answer ``before_seq``, from
    their submission times (on the event crowd, its simulated clock); None with fewer than two
    or no time between them."""
    q = (select(a.submitted_at).select_from(s.cont_answers.join(s.assignments, a.task_key == ca.task_key))
         .where(ca.loop == loop, ca.seq < before_seq, a.submitted_at.is_not(None)).order_by(ca.seq.desc()).limit(last))
    with ledger.engine_.connect() as conn:
        times = sorted(float(x) for x in conn.execute(q).scalars())
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


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


def _engine(source: Ledger | Engine) -> Engine:
    return source.engine_ if isinstance(source, Ledger) else source


def staleness(source: Ledger | Engine, loop: str) -> dict[str, float] | None:
    """Answers between the model version that chose a task and its answer: mean, median and max,
    and the mean number of versions between; None when the loop did not run in continuous mode (or
    the ledger predates continuous mode). ``source``: a ledger or an engine on one (the dashboard's
    read-only engine)."""
    q = (select(ca.seq - cv.answers_seen, ca.answered_round - ca.chosen_round)
         .select_from(s.cont_answers).join(s.cont_versions, (cv.loop == ca.loop) & (cv.round_no == ca.chosen_round))
         .where(ca.loop == loop))
    with _engine(source).connect() as conn:
        if not inspect(conn).has_table(s.cont_answers.name):  # a ledger from before schema 0006, opened read-only
            return None  # (read-only commands never migrate): it ran no continuous loop
        rows = conn.execute(q).all()
    if not rows:
        return None
    answers, versions_ = [int(r[0]) for r in rows], [int(r[1]) for r in rows]
    return {"answers": len(rows), "mean": statistics.fmean(answers), "median": float(statistics.median(answers)),
            "max": float(max(answers)), "mean_versions": statistics.fmean(versions_)}


def waiting(source: Ledger | Engine, loop: str) -> dict[str, float]:
    """Waiting (unpaid, caused by the requester) against active time, over every answer of ``loop``
    and the waiting after workers' last answers (``trailing_s``, recorded when the loop stopped;
    included in ``wait_s``)."""
    from clicloop.orchestrator.ledger.unpaid import loose_seconds

    q = select(func.count(), func.coalesce(func.sum(a.wait_s), 0.0), func.coalesce(func.sum(a.active_s), 0.0)).where(a.loop == loop)
    with _engine(source).connect() as conn:
        n, wait, active = conn.execute(q).one()
        trailing = loose_seconds(conn, loop, by="kind").get("wait", 0.0)
    wait = float(wait) + trailing
    return {"answers": int(n), "wait_s": wait, "trailing_s": trailing, "active_s": float(active),
            "share_of_active": wait / float(active) if active else 0.0}


def record_waits(ledger: Ledger, loop: str, backend: str, round_no: int, waits: dict[str, float]) -> int:
    """The waiting after each worker's last answer (raw worker id -> seconds, from the backend),
    recorded as unpaid waiting in round ``round_no`` under the worker's pseudonym; once per
    (loop, backend, worker, round): recording again (a resumed loop stopping again) adds nothing.
    The rows written."""
    rows = [{"loop": loop, "backend": backend, "worker": ledger.pseudonym(backend, worker), "round_no": round_no,
             "wait_s": round(float(seconds), 3), "recorded_at": time.time()} for worker, seconds in sorted(waits.items()) if seconds > 0]
    if not rows:
        return 0
    with ledger.engine_.begin() as conn:
        insert_ignore(conn, s.cont_waits, rows)
    return len(rows)


def summary(source: Ledger | Engine, loop: str) -> dict[str, float | None]:
    """The waiting and staleness figures the report and the dashboard show for one loop (one
    function for both): ``waiting_hours``, ``waiting_share`` (of active time; None without active
    time), ``staleness_mean``, ``staleness_median``, ``staleness_max`` (None outside continuous mode)."""
    wait, stale = waiting(source, loop), staleness(source, loop)
    return {"waiting_hours": wait["wait_s"] / 3600, "waiting_share": wait["share_of_active"] if wait["active_s"] else None,
            **{f"staleness_{k}": stale[k] if stale else None for k in ("mean", "median", "max")}}
