"""Training runs of a served Label Studio project (``connectors/labelstudio/engine.py``): a
request while a run is under way queues exactly one more, and none is lost."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from clicloop.connectors.labelstudio.engine import ProjectModel


def _model() -> ProjectModel:
    """A project's training state alone (no ledger, no Label Studio): ``_train`` counts its runs."""
    m = ProjectModel.__new__(ProjectModel)
    m.project_id, m.lock_, m.client_ = 1, threading.RLock(), object()
    m.training_ = {"state": "idle", "version": None, "started_at": None, "error": None}
    m.new_since_training_, m.train_thread_, m.training_running_, m.pending_train_ = 0, None, False, False
    m.runs_ = 0

    def train() -> None:
        m.runs_ += 1

    m._train = train
    return m


def test_a_request_when_the_last_run_has_ended_but_its_thread_not_yet_starts_a_run():
    """The thread of a run that has decided to end is still alive for a moment; a request then
    was queued on it and never made (the Label Studio lifecycle test timed out waiting for its
    second version)."""
    m = _model()
    release = threading.Event()
    ending = threading.Thread(target=release.wait)  # a training thread past its last check, not yet gone
    ending.start()
    m.train_thread_ = ending
    try:
        assert m.start_training()
        m.wait_trained(timeout_s=10)
        assert m.runs_ == 1
    finally:
        release.set()
        ending.join()


def test_a_request_while_a_run_is_under_way_queues_one_more():
    m = _model()
    go, started = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        go.wait()
        m.runs_ += 1

    m._train = slow
    assert m.start_training()
    started.wait(5)
    m._train = lambda: setattr(m, "runs_", m.runs_ + 1)
    assert m.start_training() and m.start_training()  # two requests while it runs: one more run
    go.set()
    m.wait_trained(timeout_s=10)
    time.sleep(0.05)
    assert m.runs_ == 2 and not m.training_running_ and not m.pending_train_


def test_answers_during_a_queued_run_count_from_its_start():
    """With ``train_every`` 4, a run queued behind a running one reads every answer made until it
    starts, so the count starts again there: before, it went on from the first run's start, and
    every answer past the fourth queued one more run (a CI run made four versions of eight answers,
    two of them fitted on the same answers)."""
    m = _model()
    m.settings = SimpleNamespace(train_every=4)
    m.recorder_ = SimpleNamespace(created=lambda *args: True)
    m.schema = SimpleNamespace(labels=("billing", "delivery"), from_name="topic")
    m.labels_seen_, m.model_ = set(), object()
    started, go = threading.Semaphore(0), threading.Semaphore(0)

    def blocked() -> None:
        started.release()
        go.acquire(timeout=10)
        m.runs_ += 1

    m._train = blocked
    for _ in range(4):  # the fourth answer starts a run
        m.on_annotation("created", 1, {}, None)
    assert started.acquire(timeout=5)
    for _ in range(4):  # four more while it runs: one run queued
        m.on_annotation("created", 1, {}, None)
    go.release()
    assert started.acquire(timeout=5)  # the queued run has started: it reads those four
    m.on_annotation("created", 1, {}, None)  # one new answer: not four
    go.release()
    m.wait_trained(timeout_s=10)
    time.sleep(0.05)
    assert m.runs_ == 2 and not m.pending_train_
    assert m.new_since_training_ == 1


def test_the_ledger_names_the_cold_round_as_predictions_do(tmp_path):
    """Round 0 of a served project is the version Label Studio shows on its empty predictions
    (``<loop>-cold``, as trained versions are ``<loop>-vN``): it was recorded as
    ``<loop>.p<project>-cold``, a name no prediction carried, so a data lead could not match the
    report's first row to the predictions."""
    from clicloop.connectors.labelstudio.labelset import parse_schema
    from clicloop.connectors.labelstudio.settings import ServeSettings
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager

    xml = ('<View><Text name="text" value="$text"/><Choices name="topic" toName="text">'
           '<Choice value="billing"/><Choice value="delivery"/></Choices></View>')
    settings = ServeSettings(token="t" * 16, loop="support", ledger=f"sqlite:///{tmp_path / 'l.db'}",
                             model_store=str(tmp_path / "models"))
    model = ProjectModel(settings, 3, parse_schema(xml), Registry(get_plugin_manager(load_entrypoints=False)))
    model.open(None, None)
    try:
        rounds = model.recorder_.ledger_.rounds(model.recorder_.loop)
        assert model.recorder_.loop == "support.p3"
        assert [(r["round_no"], r["model_version"]) for r in rounds] == [(0, model.version)] == [(0, "support-cold")]
    finally:
        model.close()


def _served_model(tmp_path):
    from clicloop.connectors.labelstudio.labelset import parse_schema
    from clicloop.connectors.labelstudio.settings import ServeSettings
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager

    xml = ('<View><Text name="text" value="$text"/><Choices name="topic" toName="text">'
           '<Choice value="billing"/><Choice value="delivery"/></Choices></View>')
    settings = ServeSettings(token="t" * 16, loop="support", ledger=f"sqlite:///{tmp_path / 'l.db'}",
                             model_store=str(tmp_path / "models"), hourly_wage=12.0)
    model = ProjectModel(settings, 3, parse_schema(xml), Registry(get_plugin_manager(load_entrypoints=False)))
    model.open(None, None)
    return model


def _ann(i: int, user: int, label: str | None, **kw):
    result = [] if label is None else [{"from_name": "topic", "to_name": "text", "type": "choices",
                                        "value": {"choices": [label]}}]
    return {"id": i, "completed_by": user, "result": result, "lead_time": 10.0, "created_at": "2026-12-06T10:00:00Z",
            "updated_at": "2026-12-06T10:00:00Z", **kw}


def test_deleting_one_of_two_annotations_keeps_the_others_label(tmp_path):
    """Deleting annotator B's annotation of a task annotator A had also labeled gave the task a
    new label revision of NULL (unlabeled), though A's answer stood."""
    model = _served_model(tmp_path)
    try:
        rec = model.recorder_
        assert rec.created(7, _ann(1, 10, "billing"), {"text": "refund please"}, "topic")
        assert rec.created(7, _ann(2, 11, "delivery"), {"text": "refund please"}, "topic")
        assert rec.corrected(_ann(2, 11, None), "topic", "deleted")
        assert rec.ledger_.labels(rec.loop) == {"ls-task-7": "billing"}
        assert rec.corrected(_ann(1, 10, None), "topic", "deleted")  # the last answer gone: unlabeled
        assert rec.ledger_.labels(rec.loop) == {}
    finally:
        model.close()


def test_a_skip_made_while_the_backend_was_down_is_recorded_at_the_next_training(tmp_path):
    """Training reads the whole project so that what happened while `serve` was down reaches the
    ledger; skips (``was_cancelled``) were left out there, so that work went unrecorded and unpaid,
    while a skip seen by its webhook was recorded and paid."""
    model = _served_model(tmp_path)
    tasks = [{"id": 1, "data": {"text": "where is my parcel"}, "annotations": [_ann(5, 10, "delivery")]},
             {"id": 2, "data": {"text": "double charge"}, "annotations": [_ann(6, 11, None, was_cancelled=True, lead_time=13.0)]}]
    model.client_ = SimpleNamespace(project=lambda pid: {"label_config": None}, iter_tasks=lambda pid: iter(tasks))
    model.refresh = lambda *a, **k: None
    try:
        model._train()
        from sqlalchemy import select

        from clicloop.orchestrator.ledger import schema as s

        with model.recorder_.ledger_.engine_.connect() as conn:
            rows = {r.external_id: (r.status, r.active_s) for r in conn.execute(select(s.assignments))}
        assert rows == {"5": ("submitted", 10.0), "6": ("skipped", 13.0)}
    finally:
        model.close()


def test_edits_and_deletions_made_while_the_backend_was_down_become_corrections_at_the_next_training(tmp_path):
    """An annotation edited (shipping -> tech) or deleted while `serve` was down, or whose webhook
    was lost, stayed as first recorded: no correction, a stale label, a deleted answer still a
    vote. Training reads the whole project: what differs from the ledger is now a correction, once."""
    model = _served_model(tmp_path)
    tasks = [{"id": 1, "data": {"text": "where is my parcel"}, "annotations": [_ann(5, 10, "delivery")]},
             {"id": 2, "data": {"text": "double charge"}, "annotations": [_ann(6, 11, "billing")]},
             {"id": 3, "data": {"text": "refund"}, "annotations": [_ann(7, 11, "billing")]}]
    model.client_ = SimpleNamespace(project=lambda pid: {"label_config": None}, iter_tasks=lambda pid: iter(tasks))
    model.refresh = lambda *a, **k: None
    try:
        model._train()
        rec = model.recorder_
        assert rec.ledger_.labels(rec.loop) == {"ls-task-1": "delivery", "ls-task-2": "billing", "ls-task-3": "billing"}
        tasks[1]["annotations"] = [_ann(6, 11, "delivery", updated_at="2026-12-06T11:00:00Z")]  # edited while down
        tasks[2]["annotations"] = []  # deleted while down
        model._train()
        model._train()  # once each
        assert rec.ledger_.labels(rec.loop) == {"ls-task-1": "delivery", "ls-task-2": "delivery"}
        from sqlalchemy import func, select

        from clicloop.orchestrator.ledger import schema as s

        with rec.ledger_.engine_.connect() as conn:
            assert conn.execute(select(func.count()).select_from(s.corrections)).scalar_one() == 2
    finally:
        model.close()


def test_what_a_webhook_records_while_training_reads_the_project_is_not_taken_for_a_deletion(tmp_path):
    """The read of the project is older than what webhooks record meanwhile: an annotation a
    webhook recorded during the read was missing from it and became a permanent deletion, and an
    edit recorded during the read got a correction back to the old label."""
    import time as clock

    model = _served_model(tmp_path)
    try:
        rec = model.recorder_
        first = _ann(1, 10, "billing")
        assert rec.created(11, first, {"text": "a"}, "topic")
        read_at = clock.time()
        clock.sleep(0.01)
        assert rec.created(12, _ann(2, 11, "delivery"), {"text": "b"}, "topic")  # by webhook, during the read
        assert rec.corrected(_ann(1, 10, "delivery", updated_at="2026-12-06T12:00:00Z"), "topic", "updated")
        assert rec.reconcile([first], "topic", read_at) == 0  # the read saw annotation 1 as it was, and no 2
        assert rec.ledger_.labels(rec.loop) == {"ls-task-11": "delivery", "ls-task-12": "delivery"}
    finally:
        model.close()
