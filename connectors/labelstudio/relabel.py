"""What a label-set change does to the answers already in the ledger.

- A label added to the project: answers quarantined earlier because their label was not in the
  label set are taken in (status ``submitted``, their item's first label recorded).
- A label removed from the project: its answers stay in the ledger as given (they were valid
  when made); they are counted so the change can be logged, and the next model leaves them out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.types import Consensus

if TYPE_CHECKING:
    from clicloop.connectors.labelstudio.recorder import Recorder

QUARANTINE_REASON = "label {label!r} is not in the project's label set"


def readmit(recorder: Recorder, labels: Sequence[str]) -> int:
    """Take in the answers quarantined for one of ``labels`` (now in the label set); returns how many."""
    if not labels:
        return 0
    a = s.assignments.c
    ledger = recorder.ledger_
    with recorder.lock_:
        with ledger.engine_.begin() as conn:
            rows = conn.execute(select(a.task_key, a.item_id, a.label, a.round_no).where(
                a.loop == recorder.loop, a.status == "quarantined", a.label.in_(list(labels)))).all()
            if rows:
                conn.execute(update(s.assignments).where(a.task_key.in_([r.task_key for r in rows]))
                             .values(status="submitted", reason=None))
        for round_no in sorted({r.round_no for r in rows}):
            ledger.record_labels(recorder.loop, round_no,
                                 [Consensus(r.item_id, r.label, 1.0, 1) for r in rows if r.round_no == round_no])
    return len(rows)


def answers_with(recorder: Recorder, labels: Sequence[str]) -> dict[str, int]:
    """How many submitted answers carry each of ``labels``."""
    if not labels:
        return {}
    a = s.assignments.c
    with recorder.ledger_.engine_.connect() as conn:
        found = conn.execute(select(a.label).where(a.loop == recorder.loop, a.status == "submitted",
                                                   a.label.in_(list(labels)))).scalars()
        return dict(Counter(found))
