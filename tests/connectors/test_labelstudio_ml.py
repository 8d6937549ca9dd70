"""clicloop as a Label Studio ML backend, connected to a REAL Label Studio server: Label Studio
calls /health, /setup, /predict and /webhook itself; annotations are made through the SDK."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, select

from clicloop.connectors.labelstudio import create_app
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.orchestrator.ledger import schema as s
from tests.support.labelstudio_server import LabelStudioServer, labelstudio  # noqa: F401 - fixture
from tests.support.ml_backend import Served, choice, sdk_client, serve_in_thread, wait_for

CONFIG = """<View>
  <Header value="Route customer e-mails to the team that can answer them."/>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single"><Choice value="billing"/><Choice value="delivery"/></Choices>
</View>"""
WORDS = {"billing": ["invoice", "refund", "charge", "payment", "card"], "delivery": ["parcel", "late", "courier", "address", "package"]}
FILLER = ["hello", "please", "my", "the", "thanks", "today", "order"]


def _texts(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        label = str(rng.choice(list(WORDS)))
        words = list(rng.choice(WORDS[label], 2)) + list(rng.choice(FILLER, 4))
        rng.shuffle(words)
        out.append((" ".join(words), label))
    return out


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The clicloop ML backend served by uvicorn on a free 127.0.0.1 port, in a thread."""
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with serve_in_thread(ServeSettings(token=secrets.token_hex(20), loop="ml", ledger=ledger, train_every=4,
                                       max_body_bytes=256 * 1024)) as served:
        yield served






def _assignments(ledger: str) -> list[dict[str, Any]]:
    engine = create_engine(ledger)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(s.assignments))]
    engine.dispose()
    return rows




def test_label_studio_drives_clicloop_end_to_end(labelstudio: LabelStudioServer, served: Served) -> None:
    ls = sdk_client(labelstudio)
    project = ls.projects.create(title=f"ml-{secrets.token_hex(3)}", label_config=CONFIG)
    items = _texts(40, seed=0)
    ids = ls.projects.import_tasks(id=project.id, request=[{"text": t} for t, _ in items], return_task_ids=True).task_ids
    truth = dict(zip(ids, (label for _, label in items)))
    backend = ls.ml.create(project=project.id, url=f"{served.url}/t/{served.token}", title="clicloop", auto_update=True)
    model = served.app.state.projects.by_id[project.id]  # /setup was called by Label Studio
    assert model.schema.labels == ("billing", "delivery") and model.schema.field == "text"

    # annotators label 8 tasks: the webhooks land each lead_time in the ledger, and retrain every 4
    rng = np.random.default_rng(1)
    made = {}
    for task_id in ids[:8]:
        lead = float(np.round(rng.uniform(3, 20), 2))
        made[task_id] = (ls.annotations.create(id=task_id, result=choice(truth[task_id]), lead_time=lead).id, lead)
    rows = wait_for(lambda: (r := _assignments(served.ledger)) and len(r) == 8 and r, what="8 ledger answers")
    assert sorted(r["active_s"] for r in rows) == sorted(lead for _, lead in made.values())
    assert {r["external_id"] for r in rows} == {str(a) for a, _ in made.values()}
    assert all(r["loop"] == f"ml.p{project.id}" and "labelstudio-user" not in r["worker"] for r in rows)
    wait_for(lambda: len(model.versions_) >= 1, what="a first model version")
    model.wait_trained()
    status = httpx.get(f"{served.url}/status", headers={"Authorization": f"Bearer {served.token}"}).json()
    assert status["projects"][0]["training"]["state"] == "idle" and status["projects"][0]["versions"]

    # a repeated webhook changes nothing
    task_id = ids[0]
    payload = {"action": "ANNOTATION_CREATED", "project": {"id": project.id},
               "task": {"id": task_id, "data": {"text": items[0][0]}},
               "annotation": {"id": made[task_id][0], "lead_time": made[task_id][1], "completed_by": 1,
                              "result": choice(truth[task_id]), "was_cancelled": False}}
    for _ in range(2):
        r = httpx.post(f"{served.url}/webhook", json=payload, headers={"Authorization": f"Bearer {served.token}"})
        assert r.status_code == 200 and r.json()["status"] == "already recorded"
    assert len(_assignments(served.ledger)) == 8

    # Label Studio asks for predictions of every task: one batch, label + confidence, and the
    # acquisition score lands in task.data (a Data Manager column to sort on)
    ls.actions.create(id="retrieve_tasks_predictions", project=project.id)
    tasks = list(ls.tasks.list(project=project.id, fields="all"))
    predicted = [t for t in tasks if t.predictions]
    assert len(predicted) == len(ids)
    version = model.version
    scores = [p.score for t in predicted for p in t.predictions if p.model_version == version]
    assert len(scores) == len(ids) and all(0.5 <= sc <= 1.0 for sc in scores)
    accuracy = np.mean([t.predictions[-1].result[0]["value"]["choices"][0] == truth[t.id] for t in predicted])
    assert accuracy > 0.7
    acq = wait_for(lambda: (d := [t.data.get("clicloop_acquisition") for t in ls.tasks.list(project=project.id)]) and all(
        a is not None for a in d) and d, timeout=60, what="acquisition scores in task data")
    assert all(0.0 <= a <= 1.0 for a in acq) and len(set(acq)) > 1
    # writing the same scores again sends nothing (one PATCH per task is all Label Studio offers);
    # new scores go out over concurrent connections
    held = [{"id": t.id, "data": t.data} for t in ls.tasks.list(project=project.id)]
    _, again = model.predict(held)
    assert model.write_acquisition(held, again) == 0
    assert model.write_acquisition(held[:3], [0.125, 0.25, 0.5], workers=3) == 3
    rewritten = {t.id: t.data["clicloop_acquisition"] for t in ls.tasks.list(project=project.id)}
    assert [rewritten[t["id"]] for t in held[:3]] == [0.125, 0.25, 0.5]

    # corrections: an edit and a deletion become corrections in the ledger, once
    edited, deleted = ids[1], ids[2]
    time.sleep(0.6)
    other = "delivery" if truth[edited] == "billing" else "billing"
    ls.annotations.update(id=made[edited][0], result=choice(other), lead_time=made[edited][1] + 2)
    ls.annotations.delete(id=made[deleted][0])
    engine = create_engine(served.ledger)

    def corrections() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(s.corrections))]

    fixed = wait_for(lambda: (c := corrections()) and len(c) == 2 and c, what="two corrections")
    assert {(c["event"], c["label"]) for c in fixed} == {("updated", other), ("deleted", None)}
    engine.dispose()

    # training on demand (Label Studio's "Start training" button) makes a new visible version
    before = len(model.versions_)
    ls.ml.train(id=backend.id)
    wait_for(lambda: len(model.versions_) > before, what="a version trained on demand")
    versions = httpx.get(f"{served.url}/versions", headers={"Authorization": f"Bearer {served.token}"}).json()["versions"]
    assert versions == [v["model_version"] for v in model.versions_] and len(set(versions)) == len(versions)


def test_bad_requests_get_4xx_with_a_reason(served: Served) -> None:
    good = {"Authorization": f"Bearer {served.token}"}
    url = served.url
    assert httpx.get(f"{url}/health").status_code == 401
    assert httpx.get(f"{url}/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{url}/t/wrong-token/health").status_code == 401
    assert httpx.get(f"{url}/health", auth=("anyone", served.token)).status_code == 200
    assert httpx.get(f"{url}/t/{served.token}/health").status_code == 200
    cases = [
        ("/setup", b"not json"),
        ("/setup", b'{"project": "x.1", "schema": "<View/>"}'),
        ("/setup", b'{"project": "1.1", "schema": "<View><Text name=\\"t\\" value=\\"$t\\"/></View>"}'),
        ("/setup", b'{"project": "1.1", "schema": "<View><oops"}'),
        ("/predict", b'{"tasks": "nope", "project": "1.1"}'),
        ("/predict", b'{"tasks": [], "project": "999.1"}'),
        ("/predict", b'{"tasks": [{"id": 1}], "project": "1.1"}'),
        ("/webhook", b'{"project": {"id": 1}}'),
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "project": {"id": 1}}'),
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "project": {"id": 1}, "annotation": {"id": "x"}}'),
        ("/webhook", b"[1, 2, 3]"),
        ("/predict", b"{" + b'"pad": "' + b"x" * (300 * 1024) + b'"}'),
    ]
    for path, body in cases:
        r = httpx.post(f"{url}{path}", content=body, headers={**good, "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (path, body[:80], r.status_code, r.text)
        assert r.json()["detail"], (path, r.text)
    big = httpx.post(f"{url}/predict", content=b"x" * (300 * 1024), headers=good)
    assert big.status_code == 413
    # a webhook Label Studio sends for actions clicloop does not use is acknowledged
    r = httpx.post(f"{url}/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1}}, headers=good)
    assert r.status_code == 200 and r.json()["status"] == "ignored"


@pytest.mark.parametrize("name", ["cluster-margin", "k-center-greedy"])
def test_a_batch_only_strategy_is_refused_when_the_backend_starts(tmp_path: Path, name: str) -> None:
    from clicloop.orchestrator.errors import ConfigError

    settings = ServeSettings(token="t" * 16, loop="ml", ledger=f"sqlite:///{tmp_path / 'l.db'}", strategy_name=name)
    with pytest.raises(ConfigError, match=f"'{name}' selects whole batches.*margin-coverage"):
        create_app(settings)


def test_the_default_strategy_scores_each_task_as_margin_does(tmp_path: Path) -> None:
    from clicloop.strategies.coverage import MarginCoverage
    from clicloop.strategies.scores import Margin

    create_app(ServeSettings(token="t" * 16, loop="ml", ledger=f"sqlite:///{tmp_path / 'l.db'}", strategy_name="margin-coverage"))

    class Model:
        classes_ = np.array(["a", "b", "c"])

        def predict_proba(self, X: Any) -> np.ndarray:
            return np.asarray(X, dtype=float)

    P = np.random.default_rng(0).dirichlet(np.ones(3), 50)
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(MarginCoverage().score(Model(), P, rng), Margin().score(Model(), P, rng))


def test_odd_values_get_a_4xx_naming_the_field_never_a_500_or_a_guess(served: Served) -> None:
    """Found 2026-12-06: a 401-digit number in a numeric task gave a 500 (OverflowError), a
    webhook whose task.data was a string a 500 (AttributeError); `"id": true` deleted annotation
    1; project "²" answered "invalid literal for int()" and "١٢" was read as project 12."""
    good = {"Authorization": f"Bearer {served.token}"}
    schema = ('<View><Text name="x" value="$x"/><Choices name="c" toName="x" choice="single"><Choice value="a"/>'
              '<Choice value="b"/></Choices></View>')
    setup = httpx.post(f"{served.url}/setup", json={"project": "7.1", "schema": schema}, headers=good)
    assert setup.status_code == 200, setup.text
    with pytest.raises(ValueError, match="data"):  # /predict maps it to a 422 (once a model serves)
        served.app.state.projects.by_id[7]._features([{"x": [int("1" + "0" * 400), 1]}])
    cases = [
        ("/webhook", {"action": "ANNOTATION_CREATED", "project": 7, "task": {"id": 27, "data": "str"},
                      "annotation": {"id": 954, "lead_time": 2, "result": []}}, "task.data"),
        ("/webhook", {"action": "ANNOTATION_CREATED", "project": 7, "annotation": {"id": True, "task": 3}}, "id"),
        ("/webhook", {"action": "ANNOTATION_CREATED", "project": 7, "annotation": {"id": 5, "task": True}}, "task"),
        ("/predict", {"project": "²", "tasks": []}, "project"),
        ("/predict", {"project": "١٢", "tasks": []}, "project"),
    ]
    for path, body, field in cases:
        r = httpx.post(f"{served.url}{path}", json=body, headers=good)
        assert 400 <= r.status_code < 500 and field in r.text, (path, str(body)[:80], r.status_code, r.text[:300])
    deleted = httpx.post(f"{served.url}/webhook", json={"action": "ANNOTATIONS_DELETED", "project": 7,
                                                        "annotations": [{"id": True}]}, headers=good)
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 0
    unknown = httpx.post(f"{served.url}/webhook", json={"action": "ANNOTATION_UPDATED", "project": 7, "task": {"id": 3},
                                                        "annotation": {"id": 4444, "result": []}}, headers=good)
    assert unknown.status_code == 200 and unknown.json()["status"] == "ignored", unknown.text  # it said "already recorded"


def test_an_annotation_is_one_answer_with_a_readable_label_and_a_person(served: Served) -> None:
    """Found 2026-12-06: one annotation id posted under four task ids was four paid answers; a
    list ``value`` gave a 500, a string ``choices`` was read as its first letter and paid; a
    missing ``completed_by`` made every such answer one person's ("labelstudio-user-None")."""
    good = {"Authorization": f"Bearer {served.token}"}
    schema = ('<View><Text name="x" value="$x"/><Choices name="c" toName="x" choice="single"><Choice value="a"/>'
              '<Choice value="b"/></Choices></View>')
    assert httpx.post(f"{served.url}/setup", json={"project": "7.1", "schema": schema}, headers=good).status_code == 200

    def post(task: int, **annotation: Any) -> httpx.Response:
        body = {"action": "ANNOTATION_CREATED", "project": 7, "task": {"id": task, "data": {"x": "hello"}},
                "annotation": {"id": 300, "lead_time": 100, "completed_by": 4,
                               "result": [{"from_name": "c", "to_name": "x", "type": "choices", "value": {"choices": ["b"]}}],
                               **annotation}}
        return httpx.post(f"{served.url}/webhook", json=body, headers=good)

    for annotation, says in [
        ({"result": [{"from_name": "c", "type": "choices", "value": ["b"]}]}, "value must be an object"),
        ({"result": [{"from_name": "c", "type": "choices", "value": {"choices": "bogus"}}]}, "must be a list of label strings"),
        ({"completed_by": None}, "annotation.completed_by must be the annotator's user id"),
        ({"completed_by": {"id": [1, 2]}}, "annotation.completed_by must be the annotator's user id"),
    ]:
        r = post(30, **annotation)
        assert r.status_code == 422 and says in r.text, (annotation, r.status_code, r.text)
    assert _assignments(served.ledger) == []
    assert post(30).json()["status"] == "recorded"
    for task in (31, 32, 33):
        r = post(task)
        assert r.status_code == 409 and "recorded for another task" in r.text, r.text
    assert post(30).json()["status"] == "already recorded"
    rows = _assignments(served.ledger)
    assert [(r["external_id"], r["label"], r["status"]) for r in rows] == [("300", "b", "submitted")]


def test_an_unreadable_result_read_through_the_api_is_kept_quarantined(tmp_path: Path) -> None:
    """A training reads every annotation through Label Studio's API, past the webhook's checks:
    one whose result cannot be read is recorded quarantined with the reason (paid for its time),
    not as a skip (the reason was dropped on the way to its status)."""
    from clicloop.connectors.labelstudio.recorder import Recorder

    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    recorder = Recorder(ledger, "ml.p7", 7, "Route e-mails.", ("a", "b"), hourly_wage=36.0).open()
    bad = {"id": 5, "lead_time": 100.0, "completed_by": 4,
           "result": [{"from_name": "c", "to_name": "x", "type": "choices", "value": {"choices": "bogus"}}]}
    assert recorder.created(30, bad, {"x": "hello"}, "c")
    recorder.close()
    (row,) = _assignments(ledger)
    assert row["status"] == "quarantined" and "value.choices must be a list of label strings" in row["reason"]
    assert row["label"] is None and row["active_s"] == 100.0
