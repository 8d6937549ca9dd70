"""Ledger reads and writes of unpaid time no answer carries (tables ``cont_waits`` and
``unpaid_work``) and of the batches a backend published (``published_batches``).

Two kinds of unpaid seconds have no answer to ride on: the waiting after a worker's last answer
(``cont_waits``, :mod:`clicloop.orchestrator.ledger.continuous`) and work that brought no answer,
such as a Prolific submission returned or timed out (``unpaid_work``). Every wage view counts
both through one selectable, :func:`loose`, whose ``kind`` is ``wait`` or ``returned``
(:data:`~clicloop.orchestrator.ledger.schema.OVERHEAD_KINDS`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, literal, select, union_all

from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import has_table, insert_ignore
from clicloop.orchestrator.types import PublishedBatch, UnpaidWork

if TYPE_CHECKING:  # the store imports accounting, which imports this module
    from clicloop.orchestrator.ledger import Ledger

cw, uw, pb = s.cont_waits.c, s.unpaid_work.c, s.published_batches.c


def loose(conn: Connection) -> Any:
    """One row per stretch of unpaid time no answer carries: ``loop, backend, worker, round_no,
    recorded_at, kind, seconds`` (a subquery), or None on a ledger of a schema before 0008 that
    has neither table (read-only commands never migrate)."""
    parts = []
    if has_table(conn, s.cont_waits):
        parts.append(select(cw.loop, cw.backend, cw.worker, cw.round_no, cw.recorded_at, literal("wait").label("kind"),
                            cw.wait_s.label("seconds")))
    if has_table(conn, s.unpaid_work):
        parts.append(select(uw.loop, uw.backend, uw.worker, uw.round_no, uw.recorded_at, literal("returned").label("kind"),
                            uw.seconds.label("seconds")))
    if not parts:
        return None
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("loose")


def loose_seconds(conn: Connection, loop: str, *, rounds: tuple[int, int] | None = None, before_round: int | None = None,
                  by: str | None = None) -> dict[Any, float]:
    """Seconds of :func:`loose` for ``loop`` (rounds ``first..last`` inclusive, or before
    ``before_round``), summed per value of column ``by`` (``kind``, ``round_no``, ...); under the
    key None without ``by``."""
    q = loose(conn)
    if q is None:
        return {}
    where = [q.c.loop == loop]
    if rounds is not None:
        where.append(q.c.round_no.between(*rounds))
    if before_round is not None:
        where.append(q.c.round_no < before_round)
    if by is None:
        return {None: float(conn.execute(select(func.coalesce(func.sum(q.c.seconds), 0.0)).where(*where)).scalar_one())}
    rows = conn.execute(select(q.c[by], func.sum(q.c.seconds)).where(*where).group_by(q.c[by])).all()
    return {k: float(v or 0.0) for k, v in rows}


def record_unpaid_work(ledger: Ledger, loop: str, backend: str, rows: Sequence[tuple[UnpaidWork, int]]) -> int:
    """``(work, round)`` pairs as unpaid returned work of the worker's pseudonym, once per
    (loop, backend, key): a backend that reports it again (each collect, after a restart) adds
    nothing. The rows given that had positive seconds."""
    now = time.time()
    out = [{"loop": loop, "backend": backend, "key": u.key, "worker": ledger.pseudonym(backend, u.worker), "round_no": int(r),
            "kind": u.kind, "seconds": round(float(u.seconds), 3), "recorded_at": now}
           for u, r in rows if u.seconds > 0]
    if out:
        with ledger.engine_.begin() as conn:
            insert_ignore(conn, s.unpaid_work, out)
    return len(out)


def record_batches(ledger: Ledger, loop: str, backend: str, rows: Sequence[tuple[PublishedBatch, int]]) -> None:
    """``(batch, round)`` pairs, once per (loop, backend, batch key)."""
    now = time.time()
    out = [{"loop": loop, "backend": backend, "key": b.key, "round_no": int(r), "external_id": b.external_id,
            "tasks": len(b.task_keys), "places": int(b.places),
            "sizing": None if b.sizing is None else json.dumps(dict(b.sizing), sort_keys=True), "recorded_at": now}
           for b, r in rows]
    if out:
        with ledger.engine_.begin() as conn:
            insert_ignore(conn, s.published_batches, out)


def batches(source: Ledger | Engine, loop: str) -> list[dict[str, Any]]:
    """The batches ``loop``'s backends published, in the order recorded, ``sizing`` parsed; [] on a
    ledger from before schema 0009."""
    engine = getattr(source, "engine_", source)
    with engine.connect() as conn:
        if not has_table(conn, s.published_batches):
            return []
        rows = conn.execute(select(s.published_batches).where(pb.loop == loop).order_by(pb.recorded_at, pb.key)).all()
    return [{**dict(r._mapping), "sizing": None if r.sizing is None else json.loads(r.sizing)} for r in rows]


def batch_summary(source: Ledger | Engine, loop: str) -> dict[str, Any] | None:
    """What the report says of ``loop``'s published batches: how many, their places (least, most,
    all), how many a measured rate sized and the last rate read (answers per hour); None without
    any."""
    rows = batches(source, loop)
    if not rows:
        return None
    places = [r["places"] for r in rows]
    rated = [r["sizing"] for r in rows if r["sizing"] and r["sizing"].get("rule") == "rate"]
    return {"batches": len(rows), "tasks": sum(r["tasks"] for r in rows), "places": sum(places), "min_places": min(places),
            "max_places": max(places), "rate_sized": len(rated),
            "last_rate_per_hour": rated[-1].get("rate_per_hour") if rated else None}
