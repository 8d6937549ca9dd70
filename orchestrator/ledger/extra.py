"""Ledger writes for extra answers: a person's answer to a task that already had its answer
(:mod:`clicloop.orchestrator.crowd.extra`). Each is recorded as the answer of a task of its own
(kind ``"extra"``), the task and the answer in one transaction, so a crash never leaves one
without the other and a resumed loop never sends such a task out."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import chunks, insert_ignore
from clicloop.orchestrator.types import Answer, Task

KIND = "extra"


def task_rows(ledger: Ledger, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The recorded tasks among ``keys``, by key (unknown keys are left out)."""
    out: dict[str, dict[str, Any]] = {}
    with ledger.engine_.connect() as conn:
        for chunk in chunks(list(keys), 500):
            out.update((r.key, dict(r._mapping)) for r in conn.execute(select(s.tasks).where(s.tasks.c.key.in_(chunk))))
    return out


def record_extra_answers(ledger: Ledger, loop: str, backend: str,
                         rows: Sequence[tuple[Task, Answer, str, str | None]]) -> list[int]:
    """Commit ``(task, answer, status, reason)`` rows whose tasks (kind ``"extra"``) the loop never
    created: each new answer's task is written in the answer's transaction, as dispatched (the
    platform handed it out). The positions that were new, as :meth:`Ledger.record_answers`."""

    def tasks_of(conn: Connection, new: list[int]) -> None:
        now = time.time()
        insert_ignore(conn, s.tasks, [
            {"key": t.key, "loop": t.loop, "round_no": t.round_no, "item_id": t.item_id, "replica": t.replica,
             "kind": KIND, "purpose": t.purpose, "backend": backend, "rank": -1, "status": "dispatched",
             "recorded_at": now, "reward_micros": None}
            for t in (rows[i][0] for i in new)])

    return ledger.record_answers(loop, backend, rows, then=tasks_of)
