"""Issue #21, pay from client-set time: Label Studio's ``lead_time`` is whatever the client sent.
The ML backend once recorded 1e9 s as a 5,000,000 EUR reward, answered 1e300 with a 500 and
recorded Infinity as 0 s unpaid. Now both Label Studio paths apply one rule: an implausible time
is quarantined (0 s, unpaid, the raw value in the reason), never a 5xx, and the ledger verifies."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from clicloop.backends.labelstudio import LabelStudioBackend
from clicloop.connectors.labelstudio import create_app
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.orchestrator.crowd.redundancy import check_answer
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.types import BackendContext, Task
from tests.conftest import PURPOSE
from tests.connectors.test_labelstudio_ml import CONFIG
from tests.support.labelstudio_server import LabelStudioServer, labelstudio  # noqa: F401 - fixture
from tests.support.threaded_server import serve_in_thread

# lead_time as sent (raw JSON text) -> what the ledger must hold: None = a plausible time, paid
LEADS = {"12.5": None, "1e9": "plausibility limit", "1e300": "plausibility limit", "Infinity": "not a finite",
         "-Infinity": "not a finite", "NaN": "not a finite", "-5": "negative", "null": None}


def _rows(ledger: str, table: Any) -> list[dict[str, Any]]:
    engine = create_engine(ledger)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(table))]
    engine.dispose()
    return rows


def _webhook(annotation_id: int, lead: str) -> bytes:
    return (f'{{"action": "ANNOTATION_CREATED", "project": {{"id": 1}}, "task": {{"id": {annotation_id}, "data": {{"text": "x"}}}},'
            f' "annotation": {{"id": {annotation_id}, "lead_time": {lead}, "completed_by": 1, "was_cancelled": false,'
            f' "result": [{{"from_name": "topic", "to_name": "text", "type": "choices", "value": {{"choices": ["billing"]}}}}]}}}}').encode()


def test_the_ml_backend_quarantines_implausible_lead_times_and_never_answers_5xx(tmp_path: Path) -> None:
    token, ledger = secrets.token_hex(20), f"sqlite:///{tmp_path / 'ledger.db'}"
    app = create_app(ServeSettings(token=token, loop="ml", ledger=ledger, train_every=0, hourly_wage=18.0))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with serve_in_thread(app) as url:
        assert httpx.post(f"{url}/setup", json={"project": "1.1", "schema": CONFIG}, headers=headers).status_code == 200
        for i, lead in enumerate(LEADS, start=1):
            r = httpx.post(f"{url}/webhook", content=_webhook(i, lead), headers=headers)
            assert r.status_code == 200 and r.json()["status"] == "recorded", (lead, r.status_code, r.text)
        r = httpx.post(f"{url}/webhook", content=_webhook(99, '"abc"'), headers=headers)
        assert r.status_code == 422 and "lead_time" in r.text
        r = httpx.post(f"{url}/webhook", content=_webhook(10**30, "3"), headers=headers)  # once a 500 (integer overflow)
        assert r.status_code == 422 and '"annotation","id"' in r.text, r.text
    answers = {int(a["external_id"]): a for a in _rows(ledger, s.assignments)}
    payments = {p["task_key"]: p["amount_micros"] for p in _rows(ledger, s.payments)}
    for i, (lead, why) in enumerate(LEADS.items(), start=1):
        row = answers[i]
        if why is None:
            assert row["status"] == "submitted" and row["reason"] is None, lead
        else:
            assert row["status"] == "quarantined" and why in row["reason"] and "lead_time" in row["reason"], (lead, row)
            assert row["active_s"] == 0.0 and row["task_key"] not in payments, lead
    assert payments == {answers[1]["task_key"]: 62_500}  # 12.5 s at 18/h; null is 0 s, nothing to pay
    with Ledger(ledger) as led:
        assert verify(led) == []


def test_the_plausibility_limit_is_a_serve_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_active_s"):
        ServeSettings(token="t" * 16, ledger=f"sqlite:///{tmp_path / 'l.db'}", max_active_s=0)


def test_the_label_studio_crowd_backend_applies_the_same_rule(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    loop = f"lead-{secrets.token_hex(3)}"
    labels = ("a", "b")
    backend = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop, hourly_wage=18.0,
                                 reward_per_task=0.25, max_active_s=3600.0)
    backend.open(BackendContext(loop, labels, PURPOSE, 0))
    tasks = [Task(f"{loop}/0/i{i}/0", loop, 0, f"i{i}", 0, PURPOSE, labels, f"text {i}") for i in range(3)]
    try:
        backend.dispatch(tasks)
        auth = {"Authorization": f"Token {labelstudio.token}"}
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}]
        for task, lead in zip(tasks, (1e9, 3601.0, 1800.0)):
            r = httpx.post(f"{labelstudio.url}/api/tasks/{backend.task_ids_[task.key]}/annotations/",
                           json={"result": result, "lead_time": lead}, headers=auth, timeout=30)
            assert r.status_code == 201, r.text
        answers = {a.task_key: a for a in backend.collect(tasks)}
    finally:
        backend.close()
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(ledger) as led:
        led.record_tasks(tasks, "labelstudio")
        led.record_answers(loop, "labelstudio", [(t, answers[t.key], *check_answer(answers[t.key], labels)) for t in tasks])
        assert verify(led) == []
    rows = {a["task_key"]: a for a in _rows(ledger, s.assignments)}
    payments = {p["task_key"]: p["amount_micros"] for p in _rows(ledger, s.payments)}
    for task, limit_hit in zip(tasks, ("1e+09 s", "3601 s", None)):
        if limit_hit:
            assert rows[task.key]["status"] == "quarantined" and limit_hit in rows[task.key]["reason"]
            assert rows[task.key]["active_s"] == 0.0 and task.key not in payments
    assert payments == {tasks[2].key: 9_250_000}  # 0.25 per answer + 1800 s at 18/h


def test_ledger_verify_flags_a_paid_implausible_time_recorded_before_the_rule(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clicloop.orchestrator.cli.main import app
    from clicloop.orchestrator.types import Answer

    url = f"sqlite:///{tmp_path / 'old.db'}"
    task = Task("old/0/i0/0", "old", 0, "i0", 0, PURPOSE, ("a", "b"))
    with Ledger(url) as led:  # what the ML backend wrote for lead_time 1e9 at 18/h before the rule
        led.record_tasks([task], "labelstudio-ml")
        led.record_answers("old", "labelstudio-ml", [(task, Answer(task.key, "w", "a", 1e9, 5_000_000.0, 0.0, "EUR"), "submitted", None)])
        (violation,) = verify(led)
        assert "plausibility limit" in violation.check and violation.examples == [task.key]
        assert verify(led, max_active_s=2e9) == [] and verify(led, max_active_s=None) == []
    failed = CliRunner().invoke(app, ["ledger", "verify", "--ledger", url])
    assert failed.exit_code == 1 and "FAIL no answer records more than 28800 active seconds" in failed.output
    assert CliRunner().invoke(app, ["ledger", "verify", "--ledger", url, "--max-active-s", "0"]).exit_code == 0
