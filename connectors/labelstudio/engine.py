"""The work behind the ML-backend endpoints, one :class:`ProjectModel` per Label Studio project:
parse the labeling config, train on the project's annotations (fetched through the API), predict
a batch with confidence and acquisition score, and keep every model version."""

from __future__ import annotations

import logging
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import numpy as np

from clicloop.backends.labelstudio_client import LabelStudioClient
from clicloop.connectors.labelstudio.recorder import Recorder, answer_label
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.connectors.labelstudio.writeback import ScoreWriter
from clicloop.orchestrator.errors import ClicloopError
from clicloop.orchestrator.seeding import rng_for

log = logging.getLogger("clicloop.labelstudio.ml")


class LabelConfigError(ClicloopError):
    """The project's labeling config has no single-choice classification clicloop can serve."""


@dataclass(frozen=True)
class Schema:
    """What clicloop needs from a labeling config: the Choices control, its object and field."""

    from_name: str
    to_name: str
    field: str
    labels: tuple[str, ...]
    purpose: str


def parse_schema(xml: str) -> Schema:
    """Find the first ``<Choices>`` and the object (``<Text value="$field">``...) it labels."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise LabelConfigError(f"the labeling config is not valid XML: {e}") from e
    choices = next(iter(root.iter("Choices")), None)
    if choices is None or not choices.get("name") or not choices.get("toName"):
        raise LabelConfigError("the labeling config has no <Choices name=... toName=...>: clicloop serves classification")
    to_name = choices.get("toName", "").split(",")[0]
    target = next((el for el in root.iter() if el.get("name") == to_name and el is not choices), None)
    value = (target.get("value") or "") if target is not None else ""
    if not value.startswith("$"):
        raise LabelConfigError(f"the object {to_name!r} that the Choices label has no value=\"$field\"")
    labels = tuple(c.get("value") or c.get("alias") or "" for c in choices.iter("Choice"))
    if len(labels) < 2 or "" in labels:
        raise LabelConfigError("the Choices control needs at least two <Choice value=...>")
    header = next(iter(root.iter("Header")), None)
    purpose = (header.get("value") if header is not None else None) or "Label Studio project"
    return Schema(choices.get("name", ""), to_name, value[1:], labels, purpose)


class ProjectModel:
    """Model versions, training and prediction for one project. Thread-safe."""

    def __init__(self, settings: ServeSettings, project_id: int, schema: Schema, registry: Any):
        self.settings = settings
        self.project_id = project_id
        self.schema = schema
        self.registry = registry

    def open(self, hostname: str | None, access_token: str | None) -> ProjectModel:
        self.lock_ = threading.RLock()
        self.versions_: list[dict[str, Any]] = []
        self.model_: Any = None
        self.training_: dict[str, Any] = {"state": "idle", "version": None, "started_at": None, "error": None}
        self.new_since_training_ = 0
        self.train_thread_: threading.Thread | None = None
        self.pending_train_ = False
        self.recorder_ = Recorder(self.settings.ledger, f"{self.settings.loop}.p{self.project_id}", self.project_id,
                                  self.schema.purpose, self.schema.labels, self.settings.hourly_wage,
                                  self.settings.currency, self.settings.max_active_s).open()
        self.writer_ = ScoreWriter(lambda: getattr(self, "client_", None), self.project_id, self.settings.acquisition_workers)
        self.connect(hostname, access_token)
        return self

    def connect(self, hostname: str | None, access_token: str | None) -> None:
        url = self.settings.label_studio_url or hostname
        if url and access_token:
            self.client_ = LabelStudioClient(url, access_token, timeout_s=30, retry_for_s=30)

    @property
    def version(self) -> str:
        return self.versions_[-1]["model_version"] if self.versions_ else f"{self.settings.loop}-cold"

    # -- features and prediction -----------------------------------------------------------------

    def _features(self, datas: list[dict[str, Any]]) -> tuple[Any, str]:
        values = [d.get(self.schema.field) for d in datas]
        if all(isinstance(v, str) for v in values):
            return np.array(values, dtype=object), "text"
        if all(isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v) for v in values):
            X = np.asarray(values, dtype=np.float64)
            if X.ndim == 2 and np.isfinite(X).all():
                return X, "numeric"
        raise ValueError(f"every task needs data[{self.schema.field!r}] as text, or as a list of numbers of one length")

    def predict(self, tasks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float]]:
        """One prediction per task (same order) and each task's acquisition score."""
        with self.lock_:
            model, version, strategy = self.model_, self.version, getattr(self, "strategy_", None)
        if model is None or not tasks:
            return [], []
        X, _ = self._features([t["data"] for t in tasks])
        proba = np.asarray(model.predict_proba(X))
        classes = np.asarray(model.classes_).astype(str)
        best = proba.argmax(axis=1)
        acquisition = np.asarray(strategy.score(model, X, rng_for(self.settings.seed, "ls-predict", version)), dtype=float)
        s = self.schema
        results = [
            {"result": [{"from_name": s.from_name, "to_name": s.to_name, "type": "choices",
                         "value": {"choices": [str(classes[b])]}}],
             "score": float(proba[i, b]), "model_version": version}
            for i, b in enumerate(best)
        ]
        return results, [float(a) for a in acquisition]

    # -- annotations -----------------------------------------------------------------------------

    def on_annotation(self, event: str, task_id: int, annotation: dict[str, Any], data: dict[str, Any] | None) -> bool:
        """Record an annotation event; start a retraining every ``train_every`` new ones."""
        if event == "created":
            new = self.recorder_.created(task_id, annotation, data, self.schema.from_name)
        else:
            new = self.recorder_.corrected(annotation, self.schema.from_name, event)
        if new:
            with self.lock_:
                self.new_since_training_ += 1
                due = self.settings.train_every and self.new_since_training_ >= self.settings.train_every
            if due:
                self.start_training()
        return new

    # -- training --------------------------------------------------------------------------------

    def start_training(self) -> bool:
        """Train in the background; a request while training runs queues one more run."""
        with self.lock_:
            if not hasattr(self, "client_"):
                self.training_ = {**self.training_, "state": "error", "error": "no /setup with an access token yet"}
                return False
            if self.train_thread_ is not None and self.train_thread_.is_alive():
                self.pending_train_ = True
                return True
            self.new_since_training_ = 0
            self.training_ = {"state": "training", "version": None, "started_at": time.time(), "error": None,
                              "progress": "fetching annotations"}
            self.train_thread_ = threading.Thread(target=self._train_loop, name=f"ls-train-{self.project_id}", daemon=True)
            self.train_thread_.start()
            return True

    def _train_loop(self) -> None:
        while True:
            try:
                self._train()
            except Exception as e:  # noqa: BLE001 - a failed training is reported, never kills the server
                log.exception("training project %s failed", self.project_id)
                with self.lock_:
                    self.training_ = {**self.training_, "state": "error", "error": f"{type(e).__name__}: {e}"}
            with self.lock_:
                if not self.pending_train_:
                    return
                self.pending_train_ = False
                self.training_ = {**self.training_, "state": "training", "started_at": time.time(), "error": None}

    def _train(self) -> None:
        datas, labels = [], []
        for t in self.client_.iter_tasks(self.project_id):
            anns = [a for a in t.get("annotations") or [] if not a.get("was_cancelled")]
            for a in anns:  # every annotation lands in the ledger, webhook or not
                self.recorder_.created(int(t["id"]), a, t.get("data"), self.schema.from_name)
            label = answer_label(max(anns, key=lambda a: a.get("updated_at") or ""), self.schema.from_name) if anns else None
            if label in self.schema.labels:
                datas.append(t.get("data") or {})
                labels.append(label)
        with self.lock_:
            self.training_["progress"] = f"fitting on {len(labels)} labeled tasks"
        if len(labels) < self.settings.min_labels or len(set(labels)) < 2:
            with self.lock_:
                self.training_ = {**self.training_, "state": "idle",
                                  "progress": f"waiting for labels: {len(labels)} labeled task(s), {len(set(labels))} class(es)"}
            return
        X, kind = self._features(datas)
        name = self.settings.model_name
        if name == "auto":
            name = "tfidf-logreg" if kind == "text" else "scaled-logreg"
        model = self.registry.create("model", name, self.settings.model_params, field="model")
        strategy = self.registry.create("strategy", self.settings.strategy_name, self.settings.strategy_params, field="strategy")
        model.fit(X, np.asarray(labels, dtype=object).astype(str))
        with self.lock_:
            version = f"{self.settings.loop}-v{len(self.versions_) + 1}"
            self.model_, self.strategy_ = model, strategy
            self.versions_.append({"model_version": version, "trained_on": len(labels), "trained_at": time.time()})
            self.training_ = {**self.training_, "state": "idle", "version": version, "progress": f"trained on {len(labels)}"}
        self.recorder_.new_round(version, len(labels))
        log.info("project %s: model %s trained on %d labels", self.project_id, version, len(labels))

    def wait_trained(self, timeout_s: float = 60.0) -> None:
        """Block until no training runs (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            thread = self.train_thread_
            if (thread is None or not thread.is_alive()) and not self.pending_train_:
                return
            time.sleep(0.05)

    # -- acquisition scores into the Data Manager ------------------------------------------------

    def _score_updates(self, tasks: list[dict[str, Any]], scores: list[float]) -> list[tuple[int, dict[str, Any]]]:
        """``(task id, new data)`` for each task whose data do not hold this score and model version yet."""
        version, todo = self.version, []
        for task, score in zip(tasks, scores):
            value, data = round(float(score), 6), task.get("data") or {}
            if data.get("clicloop_acquisition") != value or data.get("clicloop_model_version") != version:
                todo.append((int(task["id"]), {**data, "clicloop_acquisition": value, "clicloop_model_version": version}))
        return todo

    def queue_acquisition(self, tasks: list[dict[str, Any]], scores: list[float]) -> int:
        """Hand each task's acquisition score to the background writer (``/predict`` never waits
        on Label Studio); returns how many writes were queued."""
        if not hasattr(self, "client_"):
            return 0
        return self.writer_.submit(self._score_updates(tasks, scores))

    def write_acquisition(self, tasks: list[dict[str, Any]], scores: list[float], workers: int | None = None) -> int:
        """Store each task's acquisition score in ``task.data["clicloop_acquisition"]``, a column
        the Data Manager sorts on (Community edition included), and wait until it is written.

        Label Studio has no bulk update of task data (one PATCH per task; see HumanSignal/label-studio
        issues 1597 and 4576), so the PATCHes go out over ``workers`` connections at once (default
        ``settings.acquisition_workers``), and tasks whose data already hold this score and model
        version are skipped. Returns how many tasks were sent; a failure is logged, not raised.
        """
        if not hasattr(self, "client_"):
            return 0
        todo = self._score_updates(tasks, scores)
        writer = ScoreWriter(lambda: self.client_, self.project_id, max(1, workers or self.settings.acquisition_workers))
        writer.submit(todo)
        writer.wait_idle()
        writer.stop()
        return len(todo)

    def status(self) -> dict[str, Any]:
        with self.lock_:
            return {"project": self.project_id, "model_version": self.version, "training": dict(self.training_),
                    "versions": list(self.versions_), "labels": list(self.schema.labels),
                    "annotations_since_training": self.new_since_training_, "ledger_loop": self.recorder_.loop,
                    "acquisition_writes": self.writer_.stats()}

    def close(self) -> None:
        """Stop the score writer (pending writes are dropped, with a log line; nothing waits on
        Label Studio) and close the ledger; what the ledger holds stays."""
        self.writer_.stop()
        self.recorder_.close()
