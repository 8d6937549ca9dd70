"""The ML backend over a project's life, against a REAL Label Studio server: a restart (the
backend killed and started again), a labeling config that changes, models stored by other
library versions, answers that arrive late, and pay that was never given."""

from __future__ import annotations

import json
import logging
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, select

from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.orchestrator.ledger import schema as s
from tests.support.labelstudio_server import LabelStudioServer, free_port, labelstudio  # noqa: F401 - fixture
from tests.support.ml_backend import BackendProcess, choice, sdk_client, serve_in_thread, wait_for

WORDS = {"billing": ["invoice", "refund", "charge", "payment"], "delivery": ["parcel", "courier", "late", "address"],
         "Other": ["hello", "question", "thanks", "feedback"]}


def _config(labels: list[str]) -> str:
    choices = "".join(f'<Choice value="{label}"/>' for label in labels)
    return f'<View><Text name="text" value="$text"/><Choices name="topic" toName="text" choice="single">{choices}</Choices></View>'


def _texts(labels: list[str], seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [(" ".join([*rng.choice(WORDS[label], 2), "please"]), label) for label in labels]








def _rows(ledger: str, table: Any, **where: Any) -> list[dict[str, Any]]:
    engine = create_engine(ledger)
    with engine.connect() as conn:
        query = select(table).where(*(table.c[k] == v for k, v in where.items()))
        rows = [dict(r._mapping) for r in conn.execute(query)]
    engine.dispose()
    return rows


def _project(sdk: Any, labels: list[str], texts: list[tuple[str, str]]) -> tuple[Any, list[int]]:
    project = sdk.projects.create(title=f"life-{secrets.token_hex(3)}", label_config=_config(labels))
    ids = sdk.projects.import_tasks(id=project.id, request=[{"text": t} for t, _ in texts], return_task_ids=True).task_ids
    return project, ids


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clicloop", *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"})


def _trained_on(backend: BackendProcess, n: int) -> dict[str, Any] | None:
    """The project's status once no training runs and the latest version was trained on ``n`` answers."""
    p = backend.get("/status")["projects"][0]
    return p if p["training"]["state"] == "idle" and p["versions"] and p["versions"][-1]["trained_on"] == n else None


def test_a_killed_backend_serves_its_latest_model_on_restart_and_never_reuses_a_version(
        labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    sdk = sdk_client(labelstudio)
    texts = _texts(["billing", "delivery"] * 8, seed=1)
    project, ids = _project(sdk, ["billing", "delivery"], texts)
    truth = dict(zip(ids, (label for _, label in texts)))
    (tmp_path / "rs.yaml").write_text("loop: {name: rs, purpose: 'Route customer e-mails to the right team.'}\n"
                                      "data: {builtin: digits}\nstop: {max_labels: 1000}\nledger: sqlite:///rs.db\n")
    token = secrets.token_hex(20)
    port = free_port()
    backend = BackendProcess(f"exec clicloop serve labelstudio --config rs.yaml --port {port} --hourly-wage 18 --train-every 4",
                             tmp_path, token, port, env={"CLICLOOP_ML_TOKEN": token})
    backend.start()
    ledger, loop = f"sqlite:///{tmp_path / 'rs.db'}", f"rs.p{project.id}"
    try:
        ml = sdk.ml.create(project=project.id, url=f"{backend.url}/t/{token}", title="clicloop")
        # the webhooks train a first model at two labels and retrain every 4; how many versions that
        # makes depends on when each webhook lands, so "Start training" then brings every answer in
        for n in (4, 8):
            for task_id in ids[n - 4:n]:
                sdk.annotations.create(id=task_id, result=choice(truth[task_id]), lead_time=30.0)
            sdk.ml.train(id=ml.id)
            status = wait_for(lambda n=n: _trained_on(backend, n), what=f"a version trained on {n} answers",
                              explain=lambda: f"status: {backend.get('/status')}\nlog:\n{backend.log()}")
        names = [v["model_version"] for v in status["versions"]]
        latest = names[-1]
        assert names == [f"rs-v{i}" for i in range(1, len(names) + 1)]
        sdk.ml.train(id=ml.id)  # no new answer: no new version
        again = wait_for(lambda: (p := backend.get("/status")["projects"][0])["training"]["state"] == "idle"
                         and p["training"].get("progress", "").startswith("no new answers") and p, what="a retraining on the same answers")
        assert [v["model_version"] for v in again["versions"]] == names and again["model_version"] == latest

        backend.kill(signal.SIGKILL)  # no shutdown of any kind
        made_while_down = sdk.annotations.create(id=ids[8], result=choice(truth[ids[8]]), lead_time=30.0).id
        up_after = backend.start()
        asked = time.monotonic()
        tasks = [{"id": i, "data": {"text": t}} for i, (t, _) in zip(ids, texts)]
        answer = backend.post("/predict", {"tasks": tasks, "project": f"{project.id}.1"})
        first_predict_s = time.monotonic() - asked
        # the first call after the restart is served by the latest model
        assert answer["model_version"] == latest and all(r["result"] and r["model_version"] == latest for r in answer["results"])
        status = backend.get("/status")["projects"][0]
        assert [v["model_version"] for v in status["versions"]] == names and status["predictions"] == "served"
        stored = json.loads((tmp_path / "rs-models" / loop / f"{latest}.json").read_text())
        assert len(stored["training_set"]) == 64 and stored["trained_on"] == 8
        assert set(stored["libraries"]) >= {"sklearn", "numpy", "joblib", "clicloop"}
        print(f"restart: /health after {up_after:.2f} s, first /predict (16 tasks, {latest}) in {first_predict_s * 1000:.0f} ms")

        # more labels: the next version, trained once Label Studio's /setup brings a token again
        following = f"rs-v{len(names) + 1}"
        for task_id in ids[9:13]:
            sdk.annotations.create(id=task_id, result=choice(truth[task_id]), lead_time=30.0)
        sdk.actions.create(id="retrieve_tasks_predictions", project=project.id)
        wait_for(lambda: backend.get("/status")["projects"][0]["model_version"] == following, what=following)
    finally:
        backend.kill(signal.SIGTERM)
    rounds = _rows(ledger, s.rounds, loop=loop)
    assert [(r["round_no"], r["model_version"]) for r in rounds] == [(0, "rs-cold"), *enumerate(names, 1),
                                                                     (len(names) + 1, following)]
    assert [r["status"] for r in rounds] == ["finished"] * (len(names) + 1) + ["started"]
    down = [a for a in _rows(ledger, s.assignments, loop=loop) if a["external_id"] == str(made_while_down)]
    assert [a["round_no"] for a in down] == [len(names)]  # made while the latest version was the one to serve
    verified = _cli("ledger", "verify", "--ledger", ledger)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _knows(model: Any) -> set[str] | None:
    """The labels the served model was trained on, once no training runs."""
    model.wait_trained()
    return set(np.asarray(model.model_.classes_).astype(str)) if model.model_ is not None else None


def test_the_label_set_follows_label_studio(labelstudio: LabelStudioServer, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="clicloop.labelstudio.ml")
    sdk = sdk_client(labelstudio)
    texts = _texts(["billing", "delivery"] * 4 + ["Other"] * 4, seed=2)
    project, ids = _project(sdk, ["billing", "delivery"], texts)
    truth = dict(zip(ids, (label for _, label in texts)))
    settings = ServeSettings(token=secrets.token_hex(20), loop="ls", ledger=f"sqlite:///{tmp_path / 'l.db'}", train_every=0,
                             hourly_wage=15)
    loop = f"ls.p{project.id}"
    with serve_in_thread(settings) as served:
        ml = sdk.ml.create(project=project.id, url=f"{served.url}/t/{served.token}", title="clicloop")
        model = served.app.state.projects.by_id[project.id]
        other = ids[8]
        for task_id in [*ids[:4], other]:  # an answer with a label the project does not have yet
            sdk.annotations.create(id=task_id, result=choice(truth[task_id]), lead_time=10.0)
        answers = wait_for(lambda: (r := _rows(settings.ledger, s.assignments, loop=loop)) and len(r) == 5 and r, what="5 answers")
        assert [a["status"] for a in answers if a["label"] == "Other"] == ["quarantined"]
        sdk.ml.train(id=ml.id)
        wait_for(lambda: _knows(model) == {"billing", "delivery"}, what="a first model")

        # "Other" added in Label Studio: the settings' webhook brings the new config, the answer is taken in
        sdk.projects.update(id=project.id, label_config=_config(["billing", "delivery", "Other"]))
        assert model.schema.labels == ("billing", "delivery", "Other")
        assert [a["status"] for a in _rows(settings.ledger, s.assignments, loop=loop) if a["label"] == "Other"] == ["submitted"]
        assert {r["label"] for r in _rows(settings.ledger, s.labels, loop=loop)} == {"billing", "delivery", "Other"}
        wait_for(lambda: _knows(model) == {"billing", "delivery", "Other"}, what="a model with the new label")
        status = httpx.get(f"{served.url}/status", headers={"Authorization": f"Bearer {served.token}"}).json()["projects"][0]
        assert status["labels"] == ["billing", "delivery", "Other"]
        for task_id in ids[9:11]:
            sdk.annotations.create(id=task_id, result=choice("Other"), lead_time=10.0)
        assert not [a for a in _rows(settings.ledger, s.assignments, loop=loop) if a["status"] == "quarantined"]

        # "delivery" removed: logged, never predicted again, and the next model is trained without it
        sdk.projects.update(id=project.id, label_config=_config(["billing", "Other"]))
        assert any("label(s) ['delivery'] removed" in r.getMessage() and "2 recorded answer(s)" in r.getMessage()
                   for r in caplog.records)
        sdk.actions.create(id="retrieve_tasks_predictions", project=project.id)
        wait_for(lambda: _knows(model) == {"billing", "Other"}, what="a model without the removed label")
        sdk.actions.create(id="retrieve_tasks_predictions", project=project.id)
        predicted = {p.result[0]["value"]["choices"][0] for t in sdk.tasks.list(project=project.id, fields="all")
                     for p in t.predictions if p.result}
        assert predicted and predicted <= {"billing", "Other"}

        # without webhooks, the /setup Label Studio sends before every batch of predictions brings the change
        for hook in sdk.webhooks.list(project=project.id):
            sdk.webhooks.delete(id=hook.id)
        sdk.projects.update(id=project.id, label_config=_config(["billing", "Other", "Spam"]))
        sdk.actions.create(id="retrieve_tasks_predictions", project=project.id)
        status = httpx.get(f"{served.url}/status", headers={"Authorization": f"Bearer {served.token}"}).json()["projects"][0]
        assert status["labels"] == ["billing", "Other", "Spam"]
        setup = {"project": f"{project.id}.1", "schema": _config(["billing", "Other", "Spam", "Urgent"])}
        r = httpx.post(f"{served.url}/setup", json=setup, headers={"Authorization": f"Bearer {served.token}"})
        assert r.status_code == 200 and model.schema.labels == ("billing", "Other", "Spam", "Urgent")
        # and a training reads the config through the API before it fetches the labels
        sdk.projects.update(id=project.id, label_config=_config(["billing", "Other", "Refund"]))
        assert model.start_training()
        model.wait_trained()
        assert model.schema.labels == ("billing", "Other", "Refund")


def test_with_an_api_key_a_restarted_backend_trains_without_waiting_for_a_setup(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    """The access token comes with Label Studio's /setup and is never stored, so after a restart
    "Start training" (which sends no /setup) did nothing until someone opened the model's settings,
    and annotations made while the backend was down stayed out of the ledger until then. With
    ``label_studio_url`` and an API key the restarted backend reads the project at once."""
    sdk = sdk_client(labelstudio)
    texts = _texts(["billing", "delivery"] * 3, seed=5)
    project, ids = _project(sdk, ["billing", "delivery"], texts)
    truth = dict(zip(ids, (label for _, label in texts)))
    settings = ServeSettings(token=secrets.token_hex(20), loop="ak", ledger=f"sqlite:///{tmp_path / 'l.db'}", train_every=0,
                             hourly_wage=15, label_studio_url=labelstudio.url, label_studio_api_key=labelstudio.token)
    assert labelstudio.token not in repr(settings)
    port = free_port()
    with serve_in_thread(settings, port) as served:
        ml = sdk.ml.create(project=project.id, url=f"{served.url}/t/{served.token}", title="clicloop")
        for task_id in ids[:2]:
            sdk.annotations.create(id=task_id, result=choice(truth[task_id]), lead_time=10.0)
        model = served.app.state.projects.by_id[project.id]
        sdk.ml.train(id=ml.id)
        wait_for(lambda: model.version == "ak-v1", what="ak-v1")
        model.wait_trained()
    made_while_down = sdk.annotations.create(id=ids[2], result=choice(truth[ids[2]]), lead_time=10.0).id
    with serve_in_thread(settings, port) as served:  # restarted: no /setup comes
        model = served.app.state.projects.by_id[project.id]
        assert model.version == "ak-v1"
        sdk.ml.train(id=ml.id)
        wait_for(lambda: model.version == "ak-v2", what="ak-v2, trained without a /setup",
                 explain=lambda: f"status: {model.status()}")
        assert model.versions_[-1]["trained_on"] == 3
    answered = {a["external_id"] for a in _rows(settings.ledger, s.assignments, loop=f"ak.p{project.id}")}
    assert str(made_while_down) in answered


def test_a_model_saved_by_other_library_versions_is_retrained_not_loaded(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    sdk = sdk_client(labelstudio)
    texts = _texts(["billing", "delivery"] * 3, seed=3)
    project, ids = _project(sdk, ["billing", "delivery"], texts)
    settings = ServeSettings(token=secrets.token_hex(20), loop="lib", ledger=f"sqlite:///{tmp_path / 'l.db'}", train_every=0)
    port = free_port()
    with serve_in_thread(settings, port) as served:
        ml = sdk.ml.create(project=project.id, url=f"{served.url}/t/{served.token}", title="clicloop")
        for task_id, (_, label) in zip(ids[:2], texts):
            sdk.annotations.create(id=task_id, result=choice(label), lead_time=10.0)
        model = served.app.state.projects.by_id[project.id]
        sdk.ml.train(id=ml.id)
        wait_for(lambda: model.version == "lib-v1", what="lib-v1")
        model.wait_trained()
    meta = tmp_path / "l-models" / f"lib.p{project.id}" / "lib-v1.json"
    record = json.loads(meta.read_text())
    record["libraries"]["sklearn"] = "0.24.2"
    meta.write_text(json.dumps(record))
    with serve_in_thread(settings, port) as served:  # the same address: Label Studio knows the model there
        status = httpx.get(f"{served.url}/status", headers={"Authorization": f"Bearer {served.token}"}).json()["projects"][0]
        assert status["predictions"] == "none" and "sklearn 0.24.2 -> " in status["why_no_predictions"]
        assert status["model_version"] == "lib-cold"
        sdk.actions.create(id="retrieve_tasks_predictions", project=project.id)  # /setup: the project retrains
        model = served.app.state.projects.by_id[project.id]
        wait_for(lambda: model.version == "lib-v2", what="a retrained lib-v2")


def test_answers_count_for_the_version_serving_when_they_were_made(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    """A webhook delivered late (after a newer version) still counts for the version that served
    when the annotation was made; and with pay never given, the report says pay is unknown."""
    sdk = sdk_client(labelstudio)
    texts = _texts(["billing", "delivery"] * 3, seed=4)
    project, ids = _project(sdk, ["billing", "delivery"], texts)
    truth = dict(zip(ids, (label for _, label in texts)))
    settings = ServeSettings(token=secrets.token_hex(20), loop="late", ledger=f"sqlite:///{tmp_path / 'l.db'}", train_every=0)
    loop = f"late.p{project.id}"
    with serve_in_thread(settings) as served:
        ml = sdk.ml.create(project=project.id, url=f"{served.url}/t/{served.token}", title="clicloop")
        model = served.app.state.projects.by_id[project.id]
        for task_id in ids[:2]:
            sdk.annotations.create(id=task_id, result=choice(truth[task_id]), lead_time=20.0)
        sdk.ml.train(id=ml.id)
        wait_for(lambda: model.version == "late-v1", what="late-v1")
        model.wait_trained()
        made_under_v1 = datetime.now(timezone.utc).isoformat()
        sdk.annotations.create(id=ids[2], result=choice(truth[ids[2]]), lead_time=20.0)
        sdk.ml.train(id=ml.id)
        wait_for(lambda: model.version == "late-v2", what="late-v2")
        late = {"action": "ANNOTATION_CREATED", "project": {"id": project.id}, "task": {"id": ids[3], "data": {"text": texts[3][0]}},
                "annotation": {"id": 10**9, "lead_time": 20.0, "completed_by": 1, "result": choice(truth[ids[3]]),
                               "created_at": made_under_v1, "updated_at": made_under_v1}}
        r = httpx.post(f"{served.url}/webhook", json=late, headers={"Authorization": f"Bearer {served.token}"})
        assert r.status_code == 200 and r.json()["status"] == "recorded"
    rounds = {a["external_id"]: a["round_no"] for a in _rows(settings.ledger, s.assignments, loop=loop)}
    assert rounds[str(10**9)] == 1 and sorted(rounds.values()) == [0, 0, 1, 1]

    report = _cli("report", "--ledger", settings.ledger)
    assert report.returncode == 0, report.stderr
    assert "pay unknown" in report.stdout and "adjustments owed" not in report.stdout and " /h" not in report.stdout
    as_json = json.loads(_cli("report", "--ledger", settings.ledger, "--json").stdout)[loop]
    assert as_json["totals"]["pay_known"] is False and as_json["below_floor"] is None
    assert as_json["totals"]["wage_paid_time"] is None


def test_serving_without_the_annotators_pay_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("loop: {name: x, purpose: 'Route customer e-mails to the right team.'}\n"
                                     "data: {builtin: digits}\nstop: {max_labels: 10}\n")
    done = subprocess.run([sys.executable, "-m", "clicloop", "serve", "labelstudio", "--config", str(tmp_path / "c.yaml")],
                          capture_output=True, text=True, timeout=60, env={"CLICLOOP_ML_TOKEN": "t" * 20, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "--hourly-wage is required" in done.stderr


def test_serving_on_a_port_in_use_is_refused_before_it_says_it_serves(tmp_path: Path) -> None:
    """The "ML backend on http://..." line came first, then uvicorn's error (exit 3)."""
    import socket

    (tmp_path / "c.yaml").write_text("loop: {name: x, purpose: 'Route customer e-mails to the right team.'}\n"
                                     "data: {builtin: digits}\nstop: {max_labels: 10}\nledger: sqlite:///l.db\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "clicloop", "serve", "labelstudio", "--config", str(tmp_path / "c.yaml"),
                               "--port", str(port), "--hourly-wage", "18"], capture_output=True, text=True, timeout=60,
                              env={"CLICLOOP_ML_TOKEN": "t" * 20, "PATH": "/usr/bin:/bin", "CLICLOOP_KEY_DIR": str(tmp_path)})
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert "ML backend on" not in done.stderr
