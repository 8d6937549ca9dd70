"""``loop.mode: continuous`` against a REAL Label Studio server (tests/support): two annotators,
each a user with their own token, take tasks from the project's label stream (as the UI does,
which locks each task for them) and answer concurrently while the loop refits, withdraws queued
tasks that fell out of the ranking and tops the queue up."""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from clicloop import config_from_dict
from clicloop.backends.labelstudio_withdraw import withdrawable
from clicloop.orchestrator.data import load_data
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.types import BackendContext, Task
from tests.conftest import PURPOSE, digits_config
from tests.support.labelstudio_server import LabelStudioServer, labelstudio  # noqa: F401 - fixture
from tests.support.labelstudio_stream import StreamAnnotator, join_organization

TOKEN_ENV = "CLICLOOP_TEST_LABEL_STUDIO_TOKEN"
MAX_LABELS = 24


SHORT_S = 3.0  # seconds the stream may stay short at the budget's end while stale tasks are replaced


def _config(server: LabelStudioServer, ledger: str, title: str) -> Any:
    os.environ[TOKEN_ENV] = server.token
    return config_from_dict(digits_config(
        ledger,
        loop={"name": f"lsc-{title}", "mode": "continuous", "refit_every": 4, "lookahead": 16, "poll_seconds": 0.1,
              "round_timeout_s": 30},
        backend={"name": "labelstudio", "params": {"url": server.url, "api_key": {"env": TOKEN_ENV}, "project": title,
                                                   "hourly_wage": 18.0, "annotators": 2, "retry_for_s": 30.0}},
        stop={"max_labels": MAX_LABELS},
    ))


def _wait_for_tasks(server: LabelStudioServer, title: str, timeout: float = 60) -> int:
    headers = {"Authorization": f"Token {server.token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in httpx.get(f"{server.url}/api/projects", params={"title": title}, headers=headers).json()["results"]
                 if p["title"] == title and p.get("task_number")]
        if found:
            return int(found[0]["id"])
        time.sleep(0.1)
    raise AssertionError(f"project {title!r} never got tasks")


def _rows(ledger: Ledger, table: Any, loop: str) -> list[dict[str, Any]]:
    with ledger.engine_.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).where(table.c.loop == loop))]


def test_two_annotators_always_have_a_task_chosen_by_the_latest_model(labelstudio: LabelStudioServer, tmp_path) -> None:
    title = f"cont-{secrets.token_hex(3)}"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = _config(labelstudio, ledger_url, title)
    pool, _, _ = load_data(config.data, config.loop.seed)
    truth = dict(zip(pool.ids, pool.truth))
    tokens = [join_organization(labelstudio.url, labelstudio.token, f"{title}-{i}@example.com", f"pw-{secrets.token_hex(8)}")[1]
              for i in range(2)]
    loop = Loop(config)
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(results=loop.run()), daemon=True)
    thread.start()
    pid = _wait_for_tasks(labelstudio, title)
    people = [StreamAnnotator(labelstudio.url, tok, labelstudio.token, pid, truth, seed=i, lead_s=(1.0, 2.0)).start() for i, tok in enumerate(tokens)]
    thread.join(timeout=90)
    for p in people:
        p.stop()
    assert not thread.is_alive() and out["results"][-1].stop_reason.startswith("label budget spent")
    assert [e for p in people for e in p.errors] == []  # no submit refused: nobody was handed a task that then vanished

    with Ledger(ledger_url) as ledger:
        assert verify(ledger) == []
        name = config.loop.name
        recorded = {r["task_key"]: r for r in _rows(ledger, s.assignments, name)}
        tasks = {r["key"]: r for r in _rows(ledger, s.tasks, name)}
        order = {r["task_key"]: r for r in _rows(ledger, s.cont_answers, name)}
        versions = sorted(_rows(ledger, s.cont_versions, name), key=lambda v: v["round_no"])
        labels = ledger.labels(name)

    # every task's first annotation is its answer, one label of its item; any other annotation (the
    # race below) is an extra answer of its own, paid: every annotation is one recorded answer
    annotations = sorted((aid, at, k) for p in people for k, (aid, at) in p.submitted.items())
    first = {}
    for aid, _, key in annotations:
        first.setdefault(key, aid)
    answers = {k: r for k, r in recorded.items() if "+" not in k}
    assert set(recorded) - set(answers) == {f"{k}+{aid}" for aid, _, k in annotations if first[k] != aid}
    extras = len(recorded) - len(answers)  # paid answers: the label budget counts them
    missing = {k: (recorded[k], tasks[k]) for k in set(answers) - set(order)}
    assert set(answers) == set(first) == set(order), (missing, annotations)
    assert len(answers) + extras >= MAX_LABELS and len(answers) <= MAX_LABELS
    assert all(answers[k]["external_id"] == str(aid) for k, aid in first.items())
    assert sorted(r["item_id"] for r in answers.values()) == sorted(set(r["item_id"] for r in answers.values()))
    # Label Studio on SQLite can hand one task to both people at once (its label stream takes the task
    # lock without a transaction there); the task still has one answer, its first annotation
    handed: dict[str, list[float]] = {}
    for h in (h for p in people for h in p.handed):
        handed.setdefault(h.key, []).append(h.at)
    for key in (k for k, ats in handed.items() if len(ats) > 1):
        assert max(handed[key]) < min(at for _, at, k in annotations if k == key)  # at once, not one after the other
    assert {r["item_id"] for r in answers.values()} <= set(labels)
    assert all(labels[r["item_id"]] == r["label"] == truth[r["item_id"]] for r in answers.values())
    assert all(len(p.submitted) >= 5 for p in people)  # both really worked, side by side

    # nobody found the stream empty while budget remained: every empty answer came once all was asked,
    # but for the length of a few API calls at the budget's end (the budget counts a stale task until
    # it is withdrawn, so its replacement goes in just after it comes out); a loop that stopped
    # topping up would leave the stream short for the rest of the run
    asked_at = sorted(t["recorded_at"] for t in tasks.values() if t["kind"] != "extra")
    short = [(p.seed, round(e.at - versions[0]["recorded_at"], 2), e.project_tasks) for p in people for e in p.empty
             if e.project_tasks + extras < MAX_LABELS]
    end = asked_at[MAX_LABELS - extras - 1] - versions[0]["recorded_at"]  # when the budget was first fully asked
    dry = [e for e in short if e[1] < end or any(o[0] == e[0] and o[2] == e[2] and o[1] - e[1] >= SHORT_S for o in short)]
    assert dry == [], f"(annotator, seconds into the run, tasks in the project) with the stream empty: {short}"

    # each task was chosen by the latest model version at the time it was queued, and says so
    assert len(versions) >= 4  # the model refitted while people worked
    starts = {v["round_no"]: v["recorded_at"] for v in versions}
    for key, row in order.items():
        r, queued_at = row["chosen_round"], tasks[key]["recorded_at"]
        assert r == tasks[key]["round_no"]
        assert starts[r] <= queued_at < starts.get(r + 1, float("inf"))
    assert all(tasks[h.key]["round_no"] == h.round_no for p in people for h in p.handed)

    # withdrawn tasks are gone from the project and nobody was ever handed one
    withdrawn = {k for k, t in tasks.items() if t["status"] == "withdrawn"}
    assert withdrawn and withdrawn == loop.backend_.withdrawn_
    in_project = {t["data"]["clicloop_key"] for t in httpx.get(
        f"{labelstudio.url}/api/tasks", params={"project": pid, "page_size": 1000, "fields": "task_only"},
        headers={"Authorization": f"Token {labelstudio.token}"}).json()["tasks"]}
    assert not withdrawn & in_project and in_project == set(answers)
    assert not withdrawn & {h.key for p in people for h in p.handed}


def test_a_withdrawn_tasks_id_is_never_given_to_a_new_task(labelstudio: LabelStudioServer) -> None:
    """Label Studio on SQLite numbers imported tasks from the highest task id + 1: withdrawing the
    project's last task would hand its id to the next import, and a late annotation of the
    withdrawn task would land on the new one. The last task stays; withdrawn ids stay unused."""
    from clicloop.backends.labelstudio import LabelStudioBackend

    loop = f"ids-{secrets.token_hex(3)}"
    backend = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop, annotators=1)
    backend.open(BackendContext(loop, tuple(str(i) for i in range(10)), PURPOSE, 0))
    tasks = [Task(f"{loop}/0/item-{i}/0", loop, 0, f"item-{i}", 0, PURPOSE, (), f"text {i}") for i in range(8)]
    backend.dispatch(tasks[:7])
    ids = dict(backend.task_ids_)
    taken = backend.withdraw([t.key for t in tasks[:7]])
    backend.dispatch(tasks[7:])
    assert backend.task_ids_[tasks[7].key] not in {ids[k] for k in taken}
    # one person: the first three open tasks are held (theirs, the next they may take, a spare); the
    # last stays until a later task follows it
    assert taken == [t.key for t in tasks[3:6]] and backend.queued() == {tasks[6].key}
    backend.close()


def _task(i: int, *, labeled: bool = False, key: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": i, "is_labeled": labeled, "data": {"clicloop_key": key or f"l/{i}"}, **fields}


def test_the_rule_keeps_the_head_of_the_stream_and_anything_started() -> None:
    tasks = [_task(1, labeled=True, total_annotations=1), _task(2), _task(3), _task(4, draft_exists=True),
             _task(5, cancelled_annotations=1), _task(6), _task(7, key="other/7"), _task(8)]
    # not labeled, by id: 2 3 4 5 6 7 8; held: the first `hold`; never the last (its id would be reused)
    assert withdrawable(tasks, "l/", hold=3) == {"l/6": 6}
    assert withdrawable(tasks, "l/", hold=0) == {"l/2": 2, "l/3": 3, "l/6": 6}
    assert withdrawable(tasks + [_task(9, labeled=True, total_annotations=1)], "l/", hold=3) == {"l/6": 6, "l/8": 8}
    assert withdrawable(list(reversed(tasks)), "l/", hold=4) == {"l/6": 6}  # order is the task id, not the list's
    assert withdrawable(tasks, "l/", hold=5) == {}


class _FakeClient:
    """What the withdrawal reads of a project, without a server (the real one is tested above)."""

    def __init__(self, tasks: list[dict[str, Any]], users: int, sampling: str = "Sequential sampling"):
        self.tasks, self.n_users, self.sampling, self.deleted, self.user_reads = tasks, users, sampling, [], 0

    def project(self, project_id: int) -> dict[str, Any]:
        return {"id": project_id, "sampling": self.sampling}

    def users(self) -> list[dict[str, Any]]:
        self.user_reads += 1
        return [{"id": i} for i in range(self.n_users)]

    def iter_tasks(self, project_id: int) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["id"] not in self.deleted]

    def delete_tasks(self, project_id: int, ids: list[int]) -> None:
        self.deleted += ids


def _backend(client: _FakeClient, **params: Any) -> Any:
    from clicloop.backends.labelstudio import LabelStudioBackend

    backend = LabelStudioBackend(**params)
    backend.client_, backend.project_id_, backend.prefix_, backend.task_ids_ = client, 1, "l/", {}
    return backend


def test_without_annotators_the_organizations_users_are_the_people_who_may_hold_a_task() -> None:
    client = _FakeClient([_task(i) for i in range(1, 13)], users=3)
    backend = _backend(client)
    assert backend.can_withdraw and backend.active_workers() == 3 and backend.active_workers() == 3
    assert client.user_reads == 1  # the loop asks at every top-up: read once a minute
    assert backend.queued() == {f"l/{i}" for i in range(8, 12)}  # 2 x 3 people + 1: tasks 1-7 held; 12 is the last
    assert backend.withdraw(["l/2", "l/9", "l/10", "l/12"]) == ["l/9", "l/10"] and client.deleted == [9, 10]
    assert backend.withdrawn_ == {"l/9", "l/10"}


def test_with_another_sampling_or_withdrawal_off_nothing_is_withdrawn() -> None:
    uniform = _backend(_FakeClient([_task(i) for i in range(1, 9)], users=1, sampling="Uniform sampling"))
    assert uniform.queued() == set() and uniform.withdraw(["l/8"]) == []
    off = _backend(_FakeClient([_task(i) for i in range(1, 9)], users=1), withdraw_queued=False)
    assert not off.can_withdraw and off.queued() == set()


@pytest.mark.parametrize("bad", [0, 2.5, True])
def test_annotators_must_be_a_number_of_people(bad: Any) -> None:
    from clicloop.backends.labelstudio import LabelStudioBackend
    from clicloop.backends.labelstudio_client import LabelStudioError

    with pytest.raises(LabelStudioError, match="annotators"):
        LabelStudioBackend(annotators=bad)._validate()
