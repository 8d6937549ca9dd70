"""Extra answers (a person's answer to a task that already has its answer) are recorded once, paid,
never sent out again on a resume, and never taken for a correction. Label Studio, the backend
that reports them, is tested against the real server in tests/backends/test_labelstudio_extra.py."""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select

from clicloop import config_from_dict
from clicloop.orchestrator.crowd.extra import record_extras
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.types import Answer
from tests.conftest import digits_config


def test_an_extra_answer_is_recorded_once_paid_and_never_sent_again(tmp_path, caplog):
    loop = Loop(config_from_dict(digits_config(f"sqlite:///{tmp_path / 'l.db'}", stop={"max_labels": 20})))
    rounds = loop.rounds()
    next(rounds)  # round 0 done, the ledger open
    task = loop._recorded_tasks(0)[0]
    extra = Answer(task.key, "someone-else", loop.labels_[0], active_s=36.0, reward=Decimal("0.12"), fee=Decimal("0.02"),
                   currency="EUR", external_id="77", event="extra")
    stray = Answer("t/0/no-such-item/0", "x", loop.labels_[0], active_s=1.0, reward=0, fee=0, currency="EUR",
                   external_id="78", event="extra")
    with caplog.at_level(logging.WARNING):
        assert record_extras(loop, [extra, stray]) == 1
    assert "t/0/no-such-item/0, which this loop never sent out" in caplog.text
    assert record_extras(loop, [extra]) == 0  # reported again (a restarted backend): paid once
    keys = [t.key for t in loop._recorded_tasks(0)]
    assert len(keys) == len(set(keys)) == 10 and task.key in keys  # a resumed round never sends it out
    rows = [r for r in loop.ledger_.tasks(loop.name, 0) if r["kind"] == "extra"]
    assert [(r["key"], r["item_id"], r["status"]) for r in rows] == [(f"{task.key}+77", task.item_id, "dispatched")]
    spent = loop.ledger_.spent(loop.name)
    with loop.ledger_.engine_.connect() as conn:
        paid = sorted((r.kind, r.amount_micros) for r in conn.execute(
            select(s.payments).where(s.payments.c.task_key == f"{task.key}+77")))
    assert paid == [("fee", 20_000), ("reward", 120_000)]  # micro-units of EUR: once each
    votes = [v for v in loop.ledger_.votes(loop.name, item_ids=[task.item_id])]
    assert len(votes) == 2  # one more vote on the item
    assert verify(loop.ledger_) == []
    for _ in rounds:
        pass
    assert spent["answers"] == 11  # round 0's ten and the extra one
