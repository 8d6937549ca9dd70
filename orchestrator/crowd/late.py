"""Late answers: a person answered a task after its round's ``round_timeout_s`` had expired it,
or changed or added an answer after the loop's last poll.

The work was done, so it is recorded against its own task (its round, its item) and paid as any
answer, passing the same checks; its item is aggregated again in the round that received it, so
the vote counts (a first label, or a revision when it changes the consensus). Before 2026-12-06
such an answer was logged as "for an unknown task" and dropped: the person's work went unpaid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from clicloop.orchestrator.crowd import quality
from clicloop.orchestrator.crowd.extra import record_extras
from clicloop.orchestrator.crowd.redundancy import answer_rules, screened
from clicloop.orchestrator.ledger.extra import task_rows
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.types import Answer, Task

log = logging.getLogger(__name__)


def record_late(loop: Any, r: int, answers: Sequence[Answer], rules: dict[str, Any]) -> list[str]:
    """Record ``answers`` (created in round ``r``, for tasks not of this round) that answer an
    expired task of ``loop``; the keys of the rest, which answer no expired task of it (ignored)."""
    if not answers:
        return []
    rows_by_key = task_rows(loop.ledger_, {a.task_key for a in answers})
    rows, unknown = [], []
    for answer in answers:
        row = rows_by_key.get(answer.task_key)
        if row is None or row["loop"] != loop.name or row["status"] != "expired":
            unknown.append(answer.task_key)
            continue
        task = Task(key=row["key"], loop=loop.name, round_no=row["round_no"], item_id=row["item_id"], replica=row["replica"],
                    purpose=row["purpose"], labels=tuple(loop.labels_), kind=row["kind"])
        rows.append(screened(task, answer, loop.labels_, **rules))
    if not rows:
        return unknown
    new = loop.ledger_.record_answers(loop.name, loop.config.backend.name, rows)
    for i in new:
        log.info("round %d: a late answer to task %s (round %d, expired unanswered): recorded and paid", r, rows[i][0].key,
                 rows[i][0].round_no)
        loop._received(rows[i][1], rows[i][2])
    items = sorted({rows[i][0].item_id for i in new if rows[i][2] == "submitted" and rows[i][0].kind != "gold"})
    if not items:  # a repeat of an answer already recorded: nothing to aggregate again
        return unknown
    quality.aggregate_items(loop.ledger_, loop.aggregator_, loop.name, r, items, rng_for(loop.config.loop.seed, "late", r),
                            labels=loop.labels_, gold=list(loop.known_))
    return unknown


def settle_changes(loop: Any, r: int) -> None:
    """When a loop stops (in its first run, or in a resume that decides its stop again): one last
    poll for what people did since the last one, on a backend that reports it for tasks no longer
    asked (``reports_changes``: Label Studio): another person's answer to a task (an extra answer,
    paid) and edits and deletions of earlier answers. Before 2026-12-06 a loop resumed after its
    stop decided the stop without polling, so an annotation added after the last poll was never
    recorded or paid, though docs/labelstudio.md said the next run records it."""
    if not getattr(loop.backend_, "reports_changes", False):
        return
    answers = loop.ids_.answers(loop.backend_.collect([]))
    changes = [a for a in answers if a.event in ("updated", "deleted")]
    quality.apply_corrections(loop.ledger_, loop.aggregator_, loop.name, r, changes, loop.labels_,
                              rng_for(loop.config.loop.seed, "correct", r))
    record_extras(loop.ledger_, loop.name, loop.config.backend.name, loop.labels_, answers, loop._received,
                  **answer_rules(loop.backend_, loop.ledger_, loop.name))
