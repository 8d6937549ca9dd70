"""The Label Studio crowd backend's webhook path, against a REAL Label Studio server.

Annotations are made through the official SDK: Label Studio delivers each webhook inside the
submit call, so when the SDK call returns the delivery has been queued (or lost).
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from typing import Any

import httpx
import pytest

from clicloop.backends.labelstudio import LabelStudioBackend
from clicloop.backends.labelstudio_client import LabelStudioError
from clicloop.backends.labelstudio_webhook import WebhookPayloadError, parse_delivery
from clicloop.orchestrator.types import BackendContext, Task
from tests.conftest import PURPOSE
from tests.support.labelstudio_annotator import Annotator
from tests.support.labelstudio_server import LabelStudioServer, labelstudio  # noqa: F401 - fixture

LABELS = tuple(str(i) for i in range(10))
UPDATE_GAP = 0.6  # Label Studio's updated_at must move past created_at for an edit to show


def _tasks(loop: str, n: int) -> list[Task]:
    return [Task(f"{loop}/0/item-{i}/0", loop, 0, f"item-{i}", 0, PURPOSE, LABELS, f"text {i}") for i in range(n)]


def _api(server: LabelStudioServer, method: str, path: str, **kwargs: Any) -> Any:
    r = httpx.request(method, f"{server.url}{path}", headers={"Authorization": f"Token {server.token}"}, timeout=30, **kwargs)
    r.raise_for_status()
    return r.json() if r.content else None


def _webhooks(server: LabelStudioServer, pid: int) -> list[dict[str, Any]]:
    return [h for h in _api(server, "GET", "/api/webhooks/", params={"project": pid}) if h["project"] == pid]


def _set_active(server: LabelStudioServer, hook: dict[str, Any], active: bool) -> None:
    _api(server, "PATCH", f"/api/webhooks/{hook['id']}/", json={"is_active": active, "actions": hook["actions"]})


def _raw_post(url: str, headers: bytes) -> bytes:
    """A POST with hand-written headers and no body (what httpx will not send); the status line."""
    parts = httpx.URL(url)
    with socket.create_connection((parts.host, parts.port), timeout=10) as sock:
        sock.sendall(b"POST " + parts.raw_path + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        return sock.recv(4096)


def _choice(label: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def test_webhook_answers_corrections_and_a_lost_delivery(labelstudio: LabelStudioServer) -> None:
    """Answers arrive by webhook without a poll; a delivery lost while the webhook was off is
    picked up by the periodic poll; an edit and a deletion become corrections once, and repeated
    deliveries or a later poll change nothing; malformed bodies get 4xx and are counted; close()
    unregisters the webhook."""
    from label_studio_sdk import LabelStudio

    loop = f"hook-{secrets.token_hex(3)}"
    backend = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop, webhook_port=0,
                                 poll_every_s=3600.0)
    backend.open(BackendContext(loop, LABELS, PURPOSE, 0))
    pid = backend.project_id_
    (hook,) = _webhooks(labelstudio, pid)
    assert hook["url"] == backend.receiver_.url_ and hook["send_payload"] and "ANNOTATION_UPDATED" in hook["actions"]
    tasks = _tasks(loop, 4)
    backend.dispatch(tasks)
    assert backend.collect(tasks) == [] and backend.stats()["polls"] == 1  # the first call polls

    truth = {t.item_id: str(i) for i, t in enumerate(tasks)}
    annotator = Annotator(labelstudio.url, labelstudio.token, pid, truth, seed=7, leave=frozenset({tasks[3].key}))
    assert annotator.annotate_open_tasks() == 3
    answers = backend.collect(tasks)
    stats = backend.stats()
    assert stats["polls"] == 1 and stats["answers_by_webhook"] == 3 and stats["webhook_accepted"] == 3
    by_key = {a.key: a for a in annotator.done}
    assert sorted(a.task_key for a in answers) == sorted(by_key)
    for a in answers:
        made = by_key[a.task_key]
        assert (a.event, a.label, a.external_id) == ("created", made.label, str(made.annotation_id))
        assert a.active_s == pytest.approx(made.lead_time) and a.worker.startswith("labelstudio-user-")

    # a lost delivery: the webhook is off in Label Studio while the last task is annotated
    _set_active(labelstudio, hook, False)
    Annotator(labelstudio.url, labelstudio.token, pid, truth, seed=8).annotate_open_tasks()
    _set_active(labelstudio, hook, True)
    assert backend.collect(tasks[3:]) == []  # nothing was delivered, and no poll is due yet
    backend.poll_every_s = 0.01  # the periodic poll comes round
    (late,) = backend.collect(tasks[3:])
    assert late.task_key == tasks[3].key and late.label == truth[tasks[3].item_id]
    assert backend.stats()["answers_by_poll"] == 1 and backend.stats()["polls"] == 2

    # corrections by webhook: the backend re-reads just the touched task
    backend.poll_every_s = 3600.0
    edited, deleted = annotator.done[0], annotator.done[1]
    new_label = next(label for label in LABELS if label != edited.label)
    time.sleep(UPDATE_GAP)
    sdk = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.token)
    sdk.annotations.update(id=edited.annotation_id, result=_choice(new_label), lead_time=edited.lead_time + 2)
    sdk.annotations.delete(id=deleted.annotation_id)
    fixes = sorted(backend.collect([]), key=lambda a: a.event)
    assert [(a.event, a.task_key, a.label) for a in fixes] == [
        ("deleted", deleted.key, None), ("updated", edited.key, new_label)]
    assert backend.stats()["corrections_by_webhook"] == 2 and backend.stats()["polls"] == 2

    # repeated deliveries change nothing; nor does a poll (it reads the same versions)
    task = _api(labelstudio, "GET", f"/api/tasks/{edited.task_id}")
    update = {"action": "ANNOTATION_UPDATED", "project": {"id": pid}, "task": task,
              "annotation": _api(labelstudio, "GET", f"/api/annotations/{edited.annotation_id}")}
    repeats = [update, {**update, "action": "ANNOTATION_CREATED"},
               {"action": "ANNOTATIONS_DELETED", "project": {"id": pid}, "annotations": [{"id": deleted.annotation_id}]}]
    for body in repeats * 2:
        r = httpx.post(backend.receiver_.url_, json=body)
        assert r.status_code == 200 and r.json()["status"] == "queued"
    assert backend.collect([]) == []
    backend.poll_every_s = 0.01
    assert backend.collect([]) == [] and backend.stats()["polls"] == 3

    # malformed bodies are answered 4xx with a reason and counted; the backend keeps working
    url = backend.receiver_.url_
    bad = [b"not json", b"[1, 2]", b'{"action": 7}', b'{"action": "ANNOTATION_CREATED", "project": 1}',
           json.dumps({"action": "ANNOTATION_CREATED", "annotation": {"id": "x", "task": 1}}).encode(),
           json.dumps({"action": "ANNOTATION_UPDATED", "annotation": {"id": 1, "task": 1, "lead_time": -3}}).encode(),
           json.dumps({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": None}]}).encode()]
    rejected = backend.stats()["webhook_rejected"]
    for body in bad:
        r = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["detail"], (body, r.text)
    assert httpx.post(url.rsplit("/", 1)[0] + "/wrong-secret", json=update).status_code == 404
    assert _raw_post(url, b"").startswith(b"HTTP/1.1 411")  # no Content-Length
    assert _raw_post(url, b"Content-Length: 1000000000\r\n").startswith(b"HTTP/1.1 413")  # refused unread
    ignored = httpx.post(url, json={"action": "PROJECT_UPDATED", "project": {"id": pid}})
    other = httpx.post(url, json={**update, "project": {"id": pid + 1000}})
    assert ignored.json()["status"] == other.json()["status"] == "ignored"
    assert backend.stats()["webhook_rejected"] == rejected + len(bad) + 3
    assert backend.collect([]) == []

    backend.close()
    assert _webhooks(labelstudio, pid) == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", backend.receiver_.port_), timeout=2):
        pass


def test_webhook_setup_errors_say_what_to_do(labelstudio: LabelStudioServer) -> None:
    loop = f"hookerr-{secrets.token_hex(3)}"
    with pytest.raises(LabelStudioError, match="webhook_port must be a port number"):
        LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop, webhook_port=70000).open(
            BackendContext(loop, LABELS, PURPOSE, 0))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LabelStudioError, match="choose another webhook_port"):
            LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop, webhook_port=port).open(
                BackendContext(loop, LABELS, PURPOSE, 0))
    # a second run of the same loop replaces the webhook an earlier run left behind (a crash)
    first = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop, webhook_port=0)
    first.open(BackendContext(loop, LABELS, PURPOSE, 0))
    first.receiver_.stop()  # dies without close(): its webhook stays registered
    first.client_.close()
    second = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop, webhook_port=0)
    second.open(BackendContext(loop, LABELS, PURPOSE, 0))
    assert [h["url"] for h in _webhooks(labelstudio, second.project_id_)] == [second.receiver_.url_]
    second.close()


@pytest.mark.parametrize("body, reason", [
    (b"\xff", "not JSON"),
    (b'{"action": "ANNOTATION_CREATED"}', "needs an 'annotation'"),
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1}}', "task id"),
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 2, "result": {}}}', "result must be a list of regions"),
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 2, "completed_by": 1}, "task": {"id": 2, "data": []}}', "must be objects"),
    (b'{"action": "ANNOTATIONS_CREATED", "annotation": {"id": 1, "task": 2}}', "as a list"),
    (b'{"action": "ANNOTATION_UPDATED", "project": "x", "annotation": {"id": 1, "task": 2}}', "'project'"),
    (b'{"action": "ANNOTATION_UPDATED", "annotation": {"id": 1, "task": 2, "was_cancelled": "no"}}', "was_cancelled"),
    # found 2026-12-06: a list value was an AttributeError in collect, a string choices read as its first letter,
    # a missing completed_by made every such answer one person's, deep nesting a traceback and no answer
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 2, "completed_by": 4, "result": '
     b'[{"from_name": "label", "type": "choices", "value": ["b"]}]}}', r"annotation.result\[0\].value must be an object"),
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 2, "completed_by": 4, "result": '
     b'[{"from_name": "label", "type": "choices", "value": {"choices": "bogus"}}]}}', r"value.choices must be a list of label"),
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 2, "result": []}}', "annotation.completed_by must be"),
    (b'{"action": "ANNOTATIONS_CREATED", "annotation": [{"id": 1, "task": 2, "completed_by": {"id": [1, 2]}}]}',
     r"annotation\[0\].completed_by must be"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_labelstudio_webhook_payload_validation(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookPayloadError, match=reason):
        parse_delivery(body)


def test_labelstudio_webhook_payload_parsing() -> None:
    created = parse_delivery(json.dumps({
        "action": "ANNOTATIONS_CREATED", "project": {"id": 3},
        "annotation": [{"id": 1, "task": 5, "lead_time": 2.5, "completed_by": 4}, {"id": 2, "task": {"id": 6}, "completed_by": {"id": 5}}],
        "task": [{"id": 5, "data": {"clicloop_key": "k"}}, {"id": 6, "data": {}}]}).encode())
    assert created is not None and created.project == 3 and [a["id"] for a in created.annotations] == [1, 2]
    assert sorted(created.tasks) == [5, 6]
    deleted = parse_delivery(b'{"action": "ANNOTATIONS_DELETED", "project": 3, "annotations": [{"id": 9}]}')
    assert deleted is not None and deleted.annotations == ({"id": 9},)
    assert parse_delivery(b'{"action": "PROJECT_UPDATED", "project": {"id": 3}}') is None
    updated = parse_delivery(b'{"action": "ANNOTATION_UPDATED", "annotation": {"id": 1, "task": 2, "result": null}}')
    assert updated is not None  # an update needs no completed_by: the answer it corrects names its person


def test_a_forged_delivery_pays_no_one(labelstudio: LabelStudioServer) -> None:
    """Found 2026-12-06: a new answer was taken from the webhook's payload as it came (its
    annotator, label and lead time), so anyone who read the webhook URL in the project's settings
    could post paid answers for made-up people. A delivery now only says where to look."""
    loop = f"forge-{secrets.token_hex(3)}"
    backend = LabelStudioBackend(url=labelstudio.url, api_key=labelstudio.token, project=loop, webhook_port=0,
                                 poll_every_s=3600.0)
    backend.open(BackendContext(loop, LABELS, PURPOSE, 0))
    tasks = _tasks(loop, 2)
    backend.dispatch(tasks)
    assert backend.collect(tasks) == []  # the first call polls
    task_id = backend.task_ids_[tasks[0].key]
    forged = {"action": "ANNOTATION_CREATED", "project": {"id": backend.project_id_},
              "task": {"id": task_id, "data": {"clicloop_key": tasks[0].key}},
              "annotation": {"id": 999_999, "task": task_id, "completed_by": 4242, "lead_time": 3600.0,
                             "result": _choice("3")}}
    r = httpx.post(backend.receiver_.url_, json=forged)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert backend.collect(tasks) == [] and backend.stats()["webhook_unconfirmed"] == 1
    later = _tasks(loop, 3)[2]  # a key not sent yet (keys can be guessed): a delivery naming it changes nothing
    ahead = {**forged, "task": {"id": 987_654, "data": {"clicloop_key": later.key}},
             "annotation": {**forged["annotation"], "id": 999_998, "task": 987_654}}
    httpx.post(backend.receiver_.url_, json=ahead)
    assert backend.collect([*tasks, later]) == []
    backend.dispatch([later])
    assert backend.task_ids_[later.key] != 987_654  # imported (it was skipped as "already in the project")
    tasks = [*tasks, later]
    truth = {t.item_id: str(i) for i, t in enumerate(tasks)}
    annotator = Annotator(labelstudio.url, labelstudio.token, backend.project_id_, truth, seed=3)
    assert annotator.annotate_open_tasks() == 3
    made = {a.key: a for a in annotator.done}
    real = made[tasks[0].key]  # a real annotation re-posted with another person, time and label: the payload lies
    lying = {**forged, "annotation": {**forged["annotation"], "id": real.annotation_id}}
    assert httpx.post(backend.receiver_.url_, json=lying).json()["status"] == "queued"
    answers = {a.task_key: a for a in backend.collect(tasks)}
    assert sorted(answers) == sorted(made) and backend.stats()["answers_by_webhook"] == 3
    for key, a in answers.items():  # what Label Studio holds, not what a payload said
        assert a.external_id == str(made[key].annotation_id) and a.active_s == pytest.approx(made[key].lead_time)
        assert a.label == made[key].label and a.worker != "labelstudio-user-4242"
    backend.close()
