"""A task answered by two people in Label Studio (its label stream hands one task to two people at
once on SQLite): both are paid, against the REAL server. The first annotation is the task's
answer; the other is recorded as an answer of its own (kind "extra"), once, across restarts.
(Before 2026-12-05 the second annotation was neither an answer nor paid.)"""

from __future__ import annotations

import logging
import secrets
import time
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import create_engine, select

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from tests.backends.test_labelstudio import _assignments, _config, _run_in_thread, _truth, _wait_for_project
from tests.support.labelstudio_annotator import Annotator
from tests.support.labelstudio_server import LabelStudioServer, labelstudio  # noqa: F401 - fixture
from tests.support.labelstudio_stream import join_organization


def _choice(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def _ls_tasks(server: LabelStudioServer, pid: int) -> list[dict]:
    return httpx.get(f"{server.url}/api/tasks", params={"project": pid, "page_size": 1000},
                     headers={"Authorization": f"Token {server.token}"}).json()["tasks"]


def _rows(url: str, table, loop: str) -> list[dict]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(table).where(table.c.loop == loop))]
    engine.dispose()
    return rows


@pytest.mark.parametrize("collect_by", ["poll", "webhook"])
def test_a_task_answered_by_two_people_pays_both_once(labelstudio: LabelStudioServer, tmp_path, caplog, collect_by: str) -> None:
    from label_studio_sdk import LabelStudio

    caplog.set_level(logging.WARNING, logger="clicloop")
    title = f"two-{secrets.token_hex(3)}"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    webhook = {"webhook_port": 0, "poll_every_s": 10.0} if collect_by == "webhook" else None
    config = _config(labelstudio, url, title, webhook, max_labels=10)
    truth, name = _truth(config), config.loop.name
    _, token = join_organization(labelstudio.url, labelstudio.token, f"{title}@example.com", f"pw-{secrets.token_hex(8)}")
    second, admin = LabelStudio(base_url=labelstudio.url, api_key=token), LabelStudio(base_url=labelstudio.url, api_key=labelstudio.token)
    first_loop = Loop(config)
    thread, out = _run_in_thread(first_loop)
    pid = _wait_for_project(labelstudio, title)
    while not (tasks := _ls_tasks(labelstudio, pid)):
        time.sleep(0.1)
    # the first task, answered by both people before the loop collects it (while it waits for the round)
    t0 = tasks[0]
    label0 = truth[t0["data"]["clicloop_item"]]
    first = second.annotations.create(id=t0["id"], result=_choice(label0), lead_time=40.0)
    also = admin.annotations.create(id=t0["id"], result=_choice(label0), lead_time=20.0)
    again = admin.annotations.create(id=t0["id"], result=_choice(label0), lead_time=5.0)  # the same person again: no pay
    annotator = Annotator(labelstudio.url, labelstudio.token, pid, truth, seed=3).start()
    thread.join(timeout=120)
    annotator.stop()
    assert "error" not in out, out.get("error")

    if collect_by == "webhook":
        assert first_loop.backend_.stats()["extras_by_webhook"] + first_loop.backend_.stats()["extras_by_poll"] == 1
    key0 = t0["data"]["clicloop_key"]
    answers = {r["task_key"]: r for r in _assignments(url, name)}
    assert answers[key0]["external_id"] == str(first.id) and answers[key0]["active_s"] == pytest.approx(40.0)
    extra0 = answers[f"{key0}+{also.id}"]
    assert extra0["active_s"] == pytest.approx(20.0) and extra0["status"] == "submitted"
    assert extra0["worker"] != answers[key0]["worker"] and extra0["item_id"] == answers[key0]["item_id"]
    kinds = {t["key"]: t for t in _rows(url, s.tasks, name)}
    assert kinds[f"{key0}+{also.id}"]["kind"] == "extra" and kinds[f"{key0}+{also.id}"]["status"] == "dispatched"
    assert sum(t["kind"] == "extra" for t in kinds.values()) == 1 and f"{key0}+{again.id}" not in answers

    # after the loop: someone answers a task another person already answered; the resumed loop pays it
    t1 = next(a for a in annotator.done if a.label is not None and a.key != key0)
    late = second.annotations.create(id=t1.task_id, result=_choice(t1.label), lead_time=30.0)
    resumed = _config(labelstudio, url, title, webhook, max_labels=15)
    loop = Loop(resumed)
    thread, out = _run_in_thread(loop)
    annotator = Annotator(labelstudio.url, labelstudio.token, pid, truth, seed=4).start()
    thread.join(timeout=120)
    annotator.stop()
    assert "error" not in out, out.get("error")
    stats = loop.backend_.stats()
    assert stats["extras_by_poll"] + stats["extras_by_webhook"] >= 2  # a new backend reports both again: recorded once each

    answers = {r["task_key"]: r for r in _assignments(url, name)}
    extras = sorted(k for k in answers if "+" in k)
    assert extras == sorted([f"{key0}+{also.id}", f"{t1.key}+{late.id}"])
    assert answers[f"{t1.key}+{late.id}"]["active_s"] == pytest.approx(30.0)
    payments = _rows(url, s.payments, name)
    paid = {p["task_key"]: Decimal(p["amount_micros"]) / 10**6 for p in payments if p["kind"] == "reward"}
    assert set(paid) == set(answers)  # every answer paid, the extra ones too, each once
    assert paid[f"{key0}+{also.id}"] == Decimal("0.1") and paid[f"{t1.key}+{late.id}"] == Decimal("0.15")  # 18 EUR/h
    with Ledger(url) as ledger:
        assert verify(ledger) == []
        spent = ledger.spent(name)
        labels = ledger.labels(name)
    assert spent["active_hours"] == pytest.approx(sum(r["active_s"] for r in answers.values()) / 3600)
    assert labels[answers[key0]["item_id"]] == label0
    assert len(labels) == len({r["item_id"] for r in answers.values()})  # extras are votes, not items
    assert "ignored correction" not in caplog.text  # an extra answer is not a correction

    # after the loop spent its budget: one more person answers a task, and a run with the same budget,
    # which only decides its stop again, records and pays it (it stopped without polling: unpaid work)
    t2 = next(a for a in annotator.done if a.label is not None and a.key not in (key0, t1.key))
    later = second.annotations.create(id=t2.task_id, result=_choice(t2.label), lead_time=24.0)
    again_loop = Loop(_config(labelstudio, url, title, webhook, max_labels=15))
    thread, out = _run_in_thread(again_loop)
    thread.join(timeout=120)
    assert "error" not in out, out.get("error")
    answers = {r["task_key"]: r for r in _assignments(url, name)}
    assert answers[f"{t2.key}+{later.id}"]["active_s"] == pytest.approx(24.0)
    with Ledger(url) as ledger:
        assert verify(ledger) == [] and ledger.spent(name)["answers"] == len(answers)
