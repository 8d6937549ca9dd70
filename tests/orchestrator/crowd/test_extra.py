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
    received = []
    with caplog.at_level(logging.WARNING):
        assert record_extras(loop.ledger_, loop.name, "simulated", loop.labels_, [extra, stray],
                             lambda a, status: received.append((a.task_key, status))) == 1
    assert "t/0/no-such-item/0, which this loop never sent out" in caplog.text
    assert received == [(f"{task.key}+77", "submitted")]
    assert record_extras(loop.ledger_, loop.name, "simulated", loop.labels_, [extra]) == 0  # reported again: paid once
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


class _TwoReviewers:
    """A simulated crowd where a second person also answers the first task (every collect repeats it)."""

    def __new__(cls, **params):
        from dataclasses import replace

        from clicloop.backends.simulated import SimulatedCrowd

        class TwoReviewers(SimulatedCrowd):
            def collect(self, tasks):
                answers = super().collect(tasks)
                if answers:
                    answers.append(replace(answers[0], worker="second-person", external_id="x1", event="extra"))
                return answers

        return TwoReviewers(**params)


def test_a_second_review_of_a_prediction_is_paid_without_a_verdict(tmp_path):
    """The post-deployment review records a second person's review the same way: paid, no verdict."""
    from clicloop.orchestrator.postdeploy import DeploymentStore, ingest
    from clicloop.orchestrator.postdeploy.conditions import TriageContext
    from clicloop.orchestrator.postdeploy.learn import Learner, featurize
    from clicloop.orchestrator.postdeploy.review import Reviewer
    from clicloop.orchestrator.postdeploy.triage import Triage, build_policy
    from clicloop.orchestrator.training.models import tfidf_logreg
    from tests.orchestrator.postdeploy.synth import INTENTS, fit_model, records, utterances
    from clicloop.orchestrator.ledger import Ledger

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        base = utterances(60, seed=1)
        model = fit_model(base)
        store = DeploymentStore(ledger, "bot")
        Learner(store, lambda: tfidf_logreg(C=10.0), ([t for t, _ in base], [y for _, y in base])).deploy("v1", model, n_train=60)
        traffic = utterances(40, seed=5)
        recs = records(model, traffic, "v1", start=1_767_225_600.0, step=60.0, flag_errors=0.5)
        ingest(ledger, "bot", recs)
        Triage(store, "default", build_policy({"name": "random-audit", "params": {"rate": 0.5}}),
               TriageContext(model=model, featurize=featurize)).run()
        truth = {r["id"]: y for r, (_, y) in zip(recs, traffic)}
        reviewer = Reviewer(store, _TwoReviewers(careless_fraction=0.0), "simulated", sorted(INTENTS), truth=truth, poll_s=0.0)
        summary = reviewer.run()
        reviewer.close()
        loop = "bot:review"
        with ledger.engine_.connect() as conn:
            extra = [r._mapping for r in conn.execute(select(s.assignments).where(s.assignments.c.task_key.like("%+x1")))]
            verdicts = conn.execute(select(s.pd_reviews)).all()
            paid = conn.execute(select(s.payments.c.kind).where(s.payments.c.task_key.like("%+x1"))).scalars().all()
        assert len(extra) == 1 and extra[0]["loop"] == loop and extra[0]["status"] == "submitted"
        assert sorted(paid) == ["fee", "reward"]
        assert summary.tasks > 0 and len(verdicts) == summary.answered == summary.tasks  # one verdict each, none for the extra
        assert verify(ledger) == []
