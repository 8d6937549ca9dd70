"""The Label Studio crowd backend against a REAL Label Studio server (tests/support).

A test "annotator" thread answers through the official SDK with a lead_time, as a person in the
UI would; the loop, the backend and the ledger are the real ones.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from clicloop.backends.labelstudio import LabelStudioBackend
from clicloop import config_from_dict
from clicloop.orchestrator.data import load_data
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.types import BackendContext, Task
from tests.conftest import PURPOSE, digits_config
from tests.support.labelstudio_annotator import Annotator
from tests.support.labelstudio_server import LabelStudioServer, labelstudio  # noqa: F401 - fixture

LABELS = tuple(str(i) for i in range(10))
TOKEN_ENV = "CLICLOOP_TEST_LABEL_STUDIO_TOKEN"


def _config(server: LabelStudioServer, ledger: str, project: str, webhook: dict[str, Any] | None = None, **stop: Any) -> Any:
    os.environ[TOKEN_ENV] = server.token  # a config names where the token is, never the token itself
    return config_from_dict(digits_config(
        ledger,
        loop={"name": f"ls-{project}", "batch_size": 5, "poll_seconds": 0.2},
        backend={"name": "labelstudio", "params": {"url": server.url, "api_key": {"env": TOKEN_ENV}, "project": project,
                                                   "hourly_wage": 18.0, "retry_for_s": 60.0, **(webhook or {})}},
        stop=stop or {"max_labels": 10},
    ))


def _truth(config: Any) -> dict[str, str]:
    pool, _, _ = load_data(config.data, config.loop.seed)
    return {i: t for i, t in zip(pool.ids, pool.truth)}


def _project_id(server: LabelStudioServer, title: str) -> int:
    r = httpx.get(f"{server.url}/api/projects", params={"title": title}, headers={"Authorization": f"Token {server.token}"})
    return next(p["id"] for p in r.json()["results"] if p["title"] == title)


def _assignments(url: str, loop: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(s.assignments).where(s.assignments.c.loop == loop))]
    engine.dispose()
    return rows


def _run_in_thread(loop: Loop) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["results"] = loop.run()
        except Exception as e:  # noqa: BLE001 - handed to the test thread
            out["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _wait_for_project(server: LabelStudioServer, title: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return _project_id(server, title)
        except (StopIteration, httpx.HTTPError):
            time.sleep(0.2)
    raise AssertionError(f"project {title!r} never appeared")


@pytest.mark.parametrize("collect_by", ["poll", "webhook"])
def test_loop_with_label_studio_annotators(labelstudio: LabelStudioServer, ledger_url: str, collect_by: str) -> None:
    """Two rounds labeled in Label Studio: lead_time -> active seconds, pseudonymous worker,
    a skipped task recorded as effort without a label, pay from the hourly wage; answers
    collected by polling, or by webhook (with a slow fallback poll)."""
    title = f"loop-{collect_by}-{secrets.token_hex(3)}"
    webhook = {"webhook_port": 0, "poll_every_s": 10.0} if collect_by == "webhook" else None
    config = _config(labelstudio, ledger_url, title, webhook)
    truth = _truth(config)
    loop = Loop(config)
    thread, out = _run_in_thread(loop)
    pid = _wait_for_project(labelstudio, title)
    first_items = []
    while not first_items:  # skip the first item the loop sends
        tasks = httpx.get(f"{labelstudio.url}/api/tasks", params={"project": pid},
                          headers={"Authorization": f"Token {labelstudio.token}"}).json()["tasks"]
        first_items = [t["data"]["clicloop_item"] for t in tasks]
        time.sleep(0.1)
    annotator = Annotator(labelstudio.url, labelstudio.token, pid, truth, seed=1, skip=frozenset(first_items[:1])).start()
    thread.join(timeout=120)
    annotator.stop()
    assert "error" not in out, out.get("error")
    assert not thread.is_alive()
    rows = {r["task_key"]: r for r in _assignments(ledger_url, config.loop.name)}
    by_key = {a.key: a for a in annotator.done}
    assert set(rows) <= set(by_key) and len(rows) >= 10
    for key, row in rows.items():
        assert row["active_s"] == pytest.approx(by_key[key].lead_time)
        assert row["label"] == by_key[key].label
        assert row["status"] == ("skipped" if by_key[key].label is None else "submitted")
        assert row["external_id"] == str(by_key[key].annotation_id)
        assert "labelstudio-user" not in row["worker"] and len(row["worker"]) == 16  # a pseudonym
    assert sum(r["status"] == "skipped" for r in rows.values()) == 1
    with Ledger(ledger_url) as ledger:
        spent = ledger.spent(config.loop.name)
    expected_pay = sum(18.0 * r["active_s"] / 3600 for r in rows.values())
    assert float(spent["cost"]) == pytest.approx(expected_pay, abs=1e-4)
    assert spent["active_hours"] == pytest.approx(sum(r["active_s"] for r in rows.values()) / 3600)
    stats = loop.backend_.stats()
    assert stats["answers_by_webhook"] + stats["answers_by_poll"] == len(rows)
    if collect_by == "webhook":  # every submit was delivered to the receiver; only the fallback polls ran
        assert stats["answers_by_webhook"] == len(rows) and stats["webhook_accepted"] >= len(rows)
        assert stats["webhook_rejected"] == 0
        assert _webhooks(labelstudio, pid) == []  # unregistered when the loop closed its backend
    else:
        assert stats["answers_by_poll"] == len(rows) and "webhook_accepted" not in stats


def _webhooks(server: LabelStudioServer, pid: int) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/api/webhooks/", params={"project": pid}, headers={"Authorization": f"Token {server.token}"})
    return [h for h in r.json() if h["project"] == pid]


def _context(loop: str) -> BackendContext:
    return BackendContext(loop, LABELS, PURPOSE, 0)


def _tasks(loop: str, n: int, round_no: int = 0) -> list[Task]:
    return [Task(f"{loop}/{round_no}/item-{i}/0", loop, round_no, f"item-{i}", 0, PURPOSE, LABELS, f"text {i}")
            for i in range(n)]


def _count(server: LabelStudioServer, pid: int) -> int:
    r = httpx.get(f"{server.url}/api/tasks", params={"project": pid, "page_size": 1},
                  headers={"Authorization": f"Token {server.token}"})
    return int(r.json()["total"])


def test_dispatch_is_idempotent_and_reuses_the_project(labelstudio: LabelStudioServer) -> None:
    loop, title = f"idem-{secrets.token_hex(3)}", f"idem-{secrets.token_hex(3)}"
    backend = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=title)
    backend.open(_context(loop))
    tasks = _tasks(loop, 6)
    backend.dispatch(tasks[:4])
    backend.dispatch(tasks)  # overlaps the first call
    backend.dispatch(tasks + tasks[:2])  # duplicates inside one call
    backend.close()
    again = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=title)
    again.open(_context(loop))  # a fresh process: knows nothing but what Label Studio holds
    again.dispatch(tasks)
    assert again.project_id_ == backend.project_id_
    assert _count(labelstudio, backend.project_id_) == 6
    config = httpx.get(f"{labelstudio.url}/api/projects/{backend.project_id_}",
                       headers={"Authorization": f"Token {labelstudio.token}"}).json()["label_config"]
    assert PURPOSE in config and all(f'value="{label}"' in config for label in LABELS)
    wrong = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=title)
    with pytest.raises(Exception, match="offers the labels"):
        wrong.open(BackendContext(loop, ("cat", "dog"), PURPOSE, 0))


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, labelstudio: LabelStudioServer) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(Exception, match="LABEL_STUDIO_API_KEY"):
        LabelStudioBackend(url=labelstudio.url).open(_context("x"))
    with pytest.raises(Exception, match="answered 401"):
        LabelStudioBackend(url=labelstudio.url, api_key="0" * 40).open(_context("x"))


def test_survives_a_server_restart_mid_loop(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    """Label Studio goes down while the loop waits for answers; annotations made while clicloop
    could not reach it are picked up when it is back, and the loop finishes without duplicates."""
    title = f"restart-{secrets.token_hex(3)}"
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = _config(labelstudio, ledger, title)
    truth = _truth(config)
    thread, out = _run_in_thread(Loop(config))
    pid = _wait_for_project(labelstudio, title)
    while _count(labelstudio, pid) < 5:
        time.sleep(0.1)
    labelstudio.stop()  # the loop is polling: its calls now fail and back off
    time.sleep(2.0)
    labelstudio.start()
    annotator = Annotator(labelstudio.url, labelstudio.token, pid, truth, seed=2)
    annotator.annotate_open_tasks()  # annotated while the loop may still be backing off
    annotator.start()
    thread.join(timeout=120)
    annotator.stop()
    assert "error" not in out, out.get("error")
    rows = _assignments(ledger, config.loop.name)
    assert len(rows) == 10 and len({r["task_key"] for r in rows}) == 10
    assert _count(labelstudio, pid) == 10  # nothing imported twice
    assert {r["external_id"] for r in rows} == {str(a.annotation_id) for a in annotator.done}


def test_annotations_made_while_clicloop_was_down_are_picked_up(labelstudio: LabelStudioServer) -> None:
    loop = f"down-{secrets.token_hex(3)}"
    backend = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop)
    backend.open(_context(loop))
    tasks = _tasks(loop, 3)
    backend.dispatch(tasks)
    backend.close()  # clicloop stops
    truth = {t.item_id: "7" for t in tasks}
    Annotator(labelstudio.url, labelstudio.token, backend.project_id_, truth, seed=3).annotate_open_tasks()
    resumed = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop)
    resumed.open(_context(loop))
    answers = resumed.collect(tasks)
    assert sorted(a.task_key for a in answers) == sorted(t.key for t in tasks)
    assert {a.label for a in answers} == {"7"} and all(a.event == "created" and a.active_s > 0 for a in answers)


def test_updates_and_deletions_become_corrections(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    """After a loop, an annotator changes one answer and deletes another in Label Studio; the
    resumed loop records both as corrections that change the items' labels, once."""
    from label_studio_sdk import LabelStudio

    title = f"fix-{secrets.token_hex(3)}"
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = _config(labelstudio, ledger, title, max_labels=5)
    truth = _truth(config)
    thread, out = _run_in_thread(Loop(config))
    pid = _wait_for_project(labelstudio, title)
    annotator = Annotator(labelstudio.url, labelstudio.token, pid, truth, seed=4).start()
    thread.join(timeout=120)
    annotator.stop()
    assert "error" not in out, out.get("error")
    changed, deleted = annotator.done[0], annotator.done[1]
    item_changed, item_deleted = changed.key.split("/")[2], deleted.key.split("/")[2]
    with Ledger(ledger) as led:
        before = led.labels(config.loop.name)
    assert before[item_changed] == truth[item_changed] and item_deleted in before
    new_label = next(label for label in LABELS if label != changed.label)
    time.sleep(UPDATE_GAP)
    sdk = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.token)
    sdk.annotations.update(id=changed.annotation_id, lead_time=changed.lead_time + 3.0,
                           result=[{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [new_label]}}])
    sdk.annotations.delete(id=deleted.annotation_id)
    resumed = _config(labelstudio, ledger, title, max_labels=10)
    thread, out = _run_in_thread(Loop(resumed))
    annotator = Annotator(labelstudio.url, labelstudio.token, pid, truth, seed=5, leave=frozenset({deleted.key})).start()
    thread.join(timeout=120)
    annotator.stop()
    assert "error" not in out, out.get("error")
    with Ledger(ledger) as led:
        after = led.labels(config.loop.name)
    assert after[item_changed] == new_label
    assert item_deleted not in after
    engine = create_engine(ledger)
    with engine.connect() as conn:
        corrections = [dict(r._mapping) for r in conn.execute(select(s.corrections))]
    engine.dispose()
    assert sorted(c["event"] for c in corrections) == ["deleted", "updated"]
    # polling again changes nothing: the corrections are idempotent by version
    again = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=title)
    again.open(BackendContext(config.loop.name, LABELS, PURPOSE, 0))
    events = sorted((a.event, a.version) for a in again.collect([]))
    assert [e for e, _ in events] == ["deleted", "updated"]
    assert {f"{c['task_key']}@{v}" for c, (_, v) in zip(sorted(corrections, key=lambda c: c["event"]), events)} == {
        c["key"] for c in corrections
    }


UPDATE_GAP = 0.6  # Label Studio's updated_at must move past created_at for an edit to show


def test_the_expected_cost_of_a_task_is_exact_money() -> None:
    """The reward per task as a Decimal (it was the config's float); unknown when paid by the hour."""
    cost = LabelStudioBackend(url="http://unused", reward_per_task=0.1).expected_cost_per_task()
    assert isinstance(cost, Decimal) and cost == Decimal("0.1")
    assert LabelStudioBackend(url="http://unused", hourly_wage=12.5).expected_cost_per_task() is None
