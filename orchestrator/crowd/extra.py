"""Extra answers: another person's answer to a task that already has its answer.

A platform can hand one task to two people at once (Label Studio's label stream does on SQLite);
the task keeps its first answer, and every other one is work done for the requester all the
same. A backend reports each as an :class:`~clicloop.orchestrator.types.Answer` with
``event="extra"`` and the platform's id of it (``external_id``); the loop records it as the
answer of a task of its own, ``<task key>+<external id>`` (kind ``"extra"``, same item and round),
so it is paid, its time counts in every wage and hour, and its label is one more vote on the
item while the item is still being labeled. Recording is idempotent by that key: a backend
that reports it again (after a restart) pays no one twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from clicloop.orchestrator.crowd.redundancy import screened
from clicloop.orchestrator.ledger.extra import KIND, record_extra_answers, task_rows
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.types import Answer, Task

log = logging.getLogger(__name__)

EVENT = "extra"


def record_extras(ledger: Ledger, loop: str, backend: str, labels: Sequence[str], answers: Sequence[Answer],
                  received: Callable[[Answer, str], None] | None = None, **rules: Any) -> int:
    """Record the extra answers among ``answers`` (under the ledger's task keys) to tasks of
    ``loop``; the number that were new, each passed to ``received(answer, status)``. An extra
    answer to a task this loop never recorded is logged and ignored. ``rules``: :func:`screened`'s
    (the loop's currency and plausibility limit)."""
    extras = [a for a in answers if a.event == EVENT]
    if not extras:
        return 0
    originals = task_rows(ledger, {a.task_key for a in extras})
    rows = []
    for answer in extras:
        row = originals.get(answer.task_key)
        if row is None or row["loop"] != loop or row["kind"] == KIND:
            log.warning("an extra answer to task %s, which this loop never sent out: ignored", answer.task_key)
            continue
        task = Task(key=f"{row['key']}+{answer.external_id or answer.version}", loop=loop, round_no=row["round_no"],
                    item_id=row["item_id"], replica=row["replica"], purpose=row["purpose"], labels=tuple(labels), kind=KIND)
        answer = replace(answer, task_key=task.key, event="created")
        rows.append(screened(task, answer, labels, **rules))
    new = record_extra_answers(ledger, loop, backend, rows)
    for i in new:
        log.info("task %s: one more person answered it (%s); recorded and paid as an answer of its own",
                 rows[i][0].key.rpartition("+")[0], rows[i][2])
        if received is not None:
            received(rows[i][1], rows[i][2])
    return len(new)
