"""The work behind the ML-backend endpoints, one :class:`ProjectModel` per Label Studio project:
the labeling config in use (refreshed whenever Label Studio sends one), training on the
project's annotations (fetched through the API), prediction of a batch with confidence and
acquisition score, and every model version: stored on disk (:mod:`modelstore`) and recorded in
the ledger before it is served, reloaded when the backend starts again."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from clicloop.backends.labelstudio_client import LabelStudioClient, LabelStudioError
from clicloop.connectors.labelstudio.deferral import EmbedDeferral
from clicloop.connectors.labelstudio.labelset import LabelConfigError, Restricted, Schema, compare, parse_schema, restrict
from clicloop.connectors.labelstudio.modelstore import ModelStore, StoredModelError, training_set_hash, version_number
from clicloop.connectors.labelstudio.recorder import AnnotationConflict, Recorder, answer_label
from clicloop.connectors.labelstudio.relabel import answers_with, readmit
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.connectors.labelstudio.writeback import ScoreWriter, score_updates, write_now
from clicloop.orchestrator.errors import ClicloopError
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.training.sentence_model import auto_model

log = logging.getLogger("clicloop.labelstudio.ml")

__all__ = ["LabelConfigError", "ProjectModel", "Schema", "parse_schema"]


class ProjectModel:
    """Model versions, training and prediction for one project. Thread-safe."""

    def __init__(self, settings: ServeSettings, project_id: int, schema: Schema, registry: Any):
        self.settings = settings
        self.project_id = project_id
        self.schema = schema
        self.registry = registry

    def open(self, hostname: str | None, access_token: str | None, config_xml: str | None = None) -> ProjectModel:
        """Open the ledger loop and the model store, serve the latest stored version, connect."""
        self.lock_ = threading.RLock()
        self.model_: Any = None
        self.strategy_: Any = None
        self.serving_: str | None = None
        self.note_: str | None = None  # why no model serves, when one should
        self.retrain_due_ = False
        self.training_: dict[str, Any] = {"state": "idle", "version": None, "started_at": None, "error": None}
        self.new_since_training_ = 0
        self.training_running_ = False  # a training loop runs (set and cleared under lock_, unlike is_alive())
        self.pending_train_ = False
        self.recorder_ = Recorder(self.settings.ledger, f"{self.settings.loop}.p{self.project_id}", self.project_id,
                                  self.schema.purpose, self.schema.labels, self.settings.hourly_wage,
                                  self.settings.currency, self.settings.max_active_s, self.settings.worker_salt,
                                  cold_version=self.cold_version).open()
        self.deferral_ = EmbedDeferral(self.project_id, self.settings.predict_embed_limit, self.warm_embeddings)
        self.writer_ = ScoreWriter(lambda: getattr(self, "client_", None), self.project_id, self.settings.acquisition_workers)
        self.store_ = ModelStore(self.settings.model_store_dir, self.recorder_.loop)
        if config_xml:
            self.store_.save_config(config_xml)
        self._restore()
        self.labels_seen_ = set(self.recorder_.ledger_.labels(self.recorder_.loop).values())
        self.connect(hostname, access_token)
        return self

    def _restore(self) -> None:
        """The versions the ledger records; the latest one served from the model store."""
        rounds = [r for r in self.recorder_.ledger_.rounds(self.recorder_.loop) if r["round_no"] >= 1]
        recorded = [r["model_version"] for r in rounds]
        stored = self.store_.versions()
        numbers = [version_number(v, self.settings.loop) for v in recorded + stored]
        self.next_number_ = max((n for n in numbers if n is not None), default=0) + 1  # a name is never reused
        self.versions_: list[dict[str, Any]] = [
            {**(self.store_.meta(r["model_version"]) or {}), "model_version": r["model_version"], "trained_on": r["n_labeled"]}
            for r in rounds]
        orphans = sorted(set(stored) - set(recorded))
        if orphans:
            log.warning("project %s: model(s) %s in %s were never recorded in the ledger (the backend stopped in "
                        "between): not served, and their names are not reused", self.project_id, orphans, self.store_.dir)
        if not recorded:
            return
        try:
            model = self.store_.load(recorded[-1])
        except StoredModelError as e:
            log.warning("project %s: %s", self.project_id, e)
            self.note_, self.retrain_due_ = str(e), True
            return
        self.model_, self.strategy_, self.serving_ = model, self._create("strategy"), recorded[-1]

    def connect(self, hostname: str | None, access_token: str | None) -> None:
        """Talk to Label Studio: at the configured URL with /setup's token, else the configured key;
        at the ``hostname`` a /setup names only with the token that came with it. The configured key
        never goes to a host a request names (anyone holding the ML token can send /setup)."""
        if self.settings.label_studio_url:
            url = self.settings.label_studio_url
            access_token = access_token or self.settings.label_studio_api_key
        else:
            url = hostname
        if url and access_token:
            self.client_ = LabelStudioClient(url, access_token, timeout_s=30, retry_for_s=30)
            if self.retrain_due_:
                self.retrain_due_ = False
                self.start_training()

    @property
    def cold_version(self) -> str:
        """``<loop>-cold``: the version of the empty predictions made while no model serves, and of
        the ledger's round 0 (trained versions are ``<loop>-vN``)."""
        return f"{self.settings.loop}-cold"

    @property
    def version(self) -> str:
        """The version serving predictions (:attr:`cold_version` while none does)."""
        return self.serving_ if self.model_ is not None and self.serving_ else self.cold_version

    def _create(self, kind: str, name: str | None = None) -> Any:
        if kind == "strategy":
            return self.registry.create("strategy", self.settings.strategy_name, self.settings.strategy_params, field="strategy")
        return self.registry.create("model", name, self.settings.model_params, field="model")

    # -- the labeling config -----------------------------------------------------------------------

    def refresh(self, xml: str | None, retrain: bool = True) -> None:
        """Use the project's labeling config as Label Studio last gave it (on /setup, /predict, a
        PROJECT_UPDATED webhook, or read through the API when a training starts): answers
        quarantined for a label that now exists are taken in, a removed label is logged and left
        out of predictions and of the next model, which is trained at once (if ``retrain``)."""
        if not xml:
            return
        new = parse_schema(xml)
        with self.lock_:
            change, old = compare(self.schema, new), self.schema
            if not change.any:
                return
            self.schema = new
            self.recorder_.labels, self.recorder_.purpose = new.labels, new.purpose
        self.store_.save_config(xml)
        taken = readmit(self.recorder_, change.added)
        log.info("project %s: label set %s -> %s; %d quarantined answer(s) taken in", self.project_id,
                 list(old.labels), list(new.labels), taken)
        if change.removed:
            kept = answers_with(self.recorder_, change.removed)
            log.warning("project %s: label(s) %s removed from the labeling config; their %d recorded answer(s) stay in "
                        "the ledger as given, predictions no longer offer them and the next model leaves them out",
                        self.project_id, list(change.removed), sum(kept.values()))
        if retrain and (change.added or change.removed) and (self.model_ is not None or taken):
            self.start_training()

    # -- features and prediction -----------------------------------------------------------------

    def _features(self, datas: list[dict[str, Any]]) -> tuple[Any, str]:
        values = [d.get(self.schema.field) for d in datas]
        if all(isinstance(v, str) for v in values):
            return np.array(values, dtype=object), "text"
        if all(isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
               for v in values):
            try:
                X = np.asarray(values, dtype=np.float64)
            except (OverflowError, ValueError):  # an integer of 400 digits: beyond float64 (it was a 500)
                X = np.empty(0)
            if X.ndim == 2 and np.isfinite(X).all():
                return X, "numeric"
        raise ValueError(f"every task needs data[{self.schema.field!r}] as text, or as a list of numbers of one length")

    def predict(self, tasks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float | None]]:
        """One prediction per task (same order) and each task's acquisition score. Without a model
        each prediction is empty (Label Studio refuses an empty list of results) and no score comes.
        Of the texts the embedding cache lacks, at most ``predict_embed_limit`` are embedded here;
        the other tasks get an empty prediction and a None score, and their texts are embedded in
        the background for a later request (:mod:`deferral`)."""
        with self.lock_:
            model, version, strategy, s = self.model_, self.version, self.strategy_, self.schema
        model = restrict(model, s.labels) if model is not None else None
        empty = {"result": [], "score": None, "model_version": version}
        if model is None or not tasks:
            return [{**empty, "result": []} for _ in tasks], []
        X, _ = self._features([t["data"] for t in tasks])
        inner = model.model if isinstance(model, Restricted) else model
        encode, now = getattr(inner, "encode", None), np.ones(len(tasks), dtype=bool)
        if X.dtype == object and callable(encode):  # texts embedded once, for the prediction and the score
            now = self.deferral_.split(inner, X)
            try:
                X = np.asarray(encode(X[now])) if now.any() else X[:0]
            finally:
                self.deferral_.start()  # the deferred texts, after this request's own
        results, scores = [{**empty, "result": []} for _ in tasks], [None for _ in tasks]
        if not now.any():
            return results, scores
        proba = np.asarray(model.predict_proba(X))
        classes = np.asarray(model.classes_).astype(str)
        acquisition = np.asarray(strategy.score(model, X, rng_for(self.settings.seed, "ls-predict", version)), dtype=float)
        for row, (i, b) in enumerate(zip(np.flatnonzero(now), proba.argmax(axis=1))):
            results[i] = {"result": [{"from_name": s.from_name, "to_name": s.to_name, "type": "choices",
                                      "value": {"choices": [str(classes[b])]}}],
                          "score": float(proba[row, b]), "model_version": version}
            scores[i] = float(acquisition[row])
        return results, scores

    # -- annotations -----------------------------------------------------------------------------

    def on_annotation(self, event: str, task_id: int, annotation: dict[str, Any], data: dict[str, Any] | None) -> bool:
        """Record an annotation event; start a retraining every ``train_every`` new ones, and a
        first training as soon as two different labels are in (``train_every=0``: neither)."""
        if event == "created":
            new = self.recorder_.created(task_id, annotation, data, self.schema.from_name)
        else:
            new = self.recorder_.corrected(annotation, self.schema.from_name, event)
        if new:
            label = answer_label(annotation, self.schema.from_name) if event == "created" else None
            with self.lock_:
                self.new_since_training_ += 1
                if label in self.schema.labels:
                    self.labels_seen_.add(label)
                due = self.settings.train_every and self.new_since_training_ >= self.settings.train_every
                training = self.training_running_
                first = (self.settings.train_every and self.model_ is None and not training
                         and len(self.labels_seen_ & set(self.schema.labels)) >= 2)
            if due or first:
                self.start_training()
        return new

    # -- training --------------------------------------------------------------------------------

    def start_training(self) -> bool:
        """Train in the background; a request while training runs queues one more run. Whether one
        runs is the loop's own flag, cleared under the lock as it decides to end: a thread that
        has decided is still ``is_alive()`` for a moment, and a run queued then was never made."""
        with self.lock_:
            if not hasattr(self, "client_"):
                self.training_ = {**self.training_, "state": "error",
                                  "error": "no /setup with an access token since the backend started: training waits for "
                                           "Label Studio's next /setup (Batch predictions, or open the model's settings); "
                                           "started with --label-studio-url and $LABEL_STUDIO_API_KEY it would not wait"}
                self.retrain_due_ = True
                return False
            if self.training_running_:
                self.pending_train_ = True
                return True
            self.training_running_ = True
            self.new_since_training_ = 0
            self.training_ = {"state": "training", "version": None, "started_at": time.time(), "error": None,
                              "progress": "fetching annotations"}
            threading.Thread(target=self._train_loop, name=f"ls-train-{self.project_id}", daemon=True).start()
            return True

    def _train_loop(self) -> None:
        while True:
            with self.lock_:  # a queued run too reads every answer made until it starts
                self.new_since_training_ = 0
            try:
                self._train()
            except Exception as e:  # noqa: BLE001 - a failed training is reported, never kills the server
                log.exception("training project %s failed", self.project_id)
                with self.lock_:
                    self.training_ = {**self.training_, "state": "error", "error": f"{type(e).__name__}: {e}"}
            except BaseException:  # the thread ends (e.g. the interpreter exits): no loop runs any more
                with self.lock_:
                    self.training_running_ = False
                raise
            with self.lock_:
                if not self.pending_train_:
                    self.training_running_ = False
                    return
                self.pending_train_ = False
                self.training_ = {**self.training_, "state": "training", "started_at": time.time(), "error": None}

    def _train(self) -> None:
        try:  # the labeling config as it is now; /setup and webhooks bring it too, so a failed read is not fatal
            config_xml = self.client_.project(self.project_id).get("label_config")
        except LabelStudioError as e:
            log.warning("project %s: could not read its labeling config before training (%s); training on the label "
                        "set last seen", self.project_id, e)
        else:
            self.refresh(config_xml, retrain=False)
        datas, labels, ids, every = [], [], [], []
        schema = self.schema
        seen: list[dict[str, Any]] = []
        read_at = time.time()  # what a webhook records from now on is newer than this read
        for t in self.client_.iter_tasks(self.project_id):
            every.append((t.get("data") or {}).get(schema.field))
            for a in t.get("annotations") or []:  # every annotation lands in the ledger, webhook or not (skips too:
                try:  # unpaid work otherwise)
                    self.recorder_.created(int(t["id"]), a, t.get("data"), schema.from_name)
                except AnnotationConflict as e:
                    log.warning("project %s: %s", self.project_id, e)
                seen.append(a)
            anns = [a for a in t.get("annotations") or [] if not a.get("was_cancelled")]
            label = answer_label(max(anns, key=lambda a: a.get("updated_at") or ""), schema.from_name) if anns else None
            if label in schema.labels:
                datas.append(t.get("data") or {})
                labels.append(label)
                ids.append(int(t["id"]))
        self.recorder_.reconcile(seen, schema.from_name, read_at)  # edits and deletions no webhook told of
        with self.lock_:
            self.labels_seen_.update(labels)
            self.training_["progress"] = f"fitting on {len(labels)} labeled tasks"
        if len(labels) < self.settings.min_labels or len(set(labels)) < 2:
            with self.lock_:
                self.training_ = {**self.training_, "state": "idle",
                                  "progress": f"waiting for labels: {len(labels)} labeled task(s), {len(set(labels))} class(es)"}
            return
        X, kind = self._features(datas)
        name = self.settings.model_name
        if name == "auto":
            name, why = auto_model(kind)
            log.info("project %s: model %s (%s)", self.project_id, name, why)
        training_set = training_set_hash(ids, labels, [d.get(schema.field) for d in datas])
        if self._serves(training_set, name, list(schema.labels)):
            return
        model = self._create("model", name)
        model.fit(X, np.asarray(labels, dtype=object).astype(str))
        self._commit(model, {"trained_on": len(labels), "model": name, "training_set": training_set,
                             "labels": list(schema.labels)})
        self.warm_embeddings(model, every)

    def _serves(self, training_set: str, model: str, labels: list[str]) -> bool:
        """Whether the served version was fitted on exactly these answers, with this model and
        label set: a retraining then makes no new version (two requests while one run was under
        way, a webhook and a "Start training" for the same answers), and the run ends saying so."""
        with self.lock_:
            last = self.versions_[-1] if self.versions_ else {}
            same = (self.model_ is not None and last.get("model_version") == self.serving_
                    and last.get("training_set") == training_set and last.get("model") == model
                    and list(last.get("labels") or []) == labels)
            if same:
                self.training_ = {**self.training_, "state": "idle", "version": self.serving_,
                                  "progress": f"no new answers since {self.serving_}, which keeps serving"}
        return same

    def warm_embeddings(self, model: Any, texts: list[Any]) -> int:
        """Embed every task's text into the disk cache, after a model is served, so that
        ``/predict`` (which reads the cache and writes nothing) finds them: Label Studio's "Retrieve
        predictions" on a whole project must answer within its 100 s limit, longer than embedding
        20,000 texts takes on a CPU. Also embeds, in the background, the texts a ``/predict`` left
        over its ``predict_embed_limit`` (:mod:`deferral`). Returns how many texts; 0 when the model
        embeds nothing."""
        encode = getattr(model, "encode", None)
        texts = [t for t in texts if isinstance(t, str)]
        if not callable(encode) or not texts:
            return 0
        with self.lock_:
            before, doing = self.training_.get("progress"), f"embedding {len(texts)} task texts for /predict"
            self.training_ = {**self.training_, "progress": doing}
        encode(np.asarray(texts, dtype=object), cache=True)
        with self.lock_:  # unless a training (or another embedding) reported since
            if self.training_.get("progress") == doing:
                self.training_ = {**self.training_, "progress": before}
        return len(texts)

    def _commit(self, model: Any, meta: dict[str, Any]) -> str:
        """A fitted model becomes the next version: stored on disk, then recorded in the ledger
        (its round opened), and only then served and announced."""
        with self.lock_:
            version = f"{self.settings.loop}-v{self.next_number_}"
            self.next_number_ += 1
        record = self.store_.save(version, model, {**meta, "trained_at": time.time()})
        self.recorder_.new_round(version, int(meta["trained_on"]))
        strategy = self._create("strategy")
        with self.lock_:
            self.model_, self.strategy_, self.serving_, self.note_ = model, strategy, version, None
            self.versions_.append(record)
            self.training_ = {**self.training_, "state": "idle", "version": version,
                              "progress": f"trained on {meta['trained_on']}"}
        log.info("project %s: model %s trained on %d labels", self.project_id, version, meta["trained_on"])
        return version

    def wait_trained(self, timeout_s: float = 60.0) -> None:
        """Block until no training runs (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.training_running_ and not self.pending_train_:
                return
            time.sleep(0.05)

    # -- acquisition scores into the Data Manager ------------------------------------------------

    def queue_acquisition(self, tasks: list[dict[str, Any]], scores: list[float | None]) -> int:
        """Hand each task's acquisition score to the background writer (``/predict`` never waits
        on Label Studio); returns how many writes were queued."""
        if not hasattr(self, "client_"):
            return 0
        return self.writer_.submit(score_updates(tasks, scores, self.version))

    def write_acquisition(self, tasks: list[dict[str, Any]], scores: list[float | None], workers: int | None = None) -> int:
        """Store each task's acquisition score in ``task.data["clicloop_acquisition"]``, a column
        the Data Manager sorts on (Community edition included), and wait until it is written.

        Label Studio has no bulk update of task data (one PATCH per task; see HumanSignal/label-studio
        issues 1597 and 4576), so the PATCHes go out over ``workers`` connections at once (default
        ``settings.acquisition_workers``), and tasks whose data already hold this score and model
        version are skipped. Returns how many tasks were sent; a failure is logged, not raised.
        """
        if not hasattr(self, "client_"):
            return 0
        return write_now(lambda: self.client_, self.project_id, score_updates(tasks, scores, self.version),
                         max(1, workers or self.settings.acquisition_workers))

    def _why_no_predictions(self) -> str | None:
        """Why /predict answers empty predictions, in words (None while a model serves)."""
        if self.model_ is not None:
            return None if restrict(self.model_, self.schema.labels) is not None else (
                f"model {self.serving_} knows none of the project's current labels: waiting for the next model")
        if self.note_:
            return self.note_
        if self.training_.get("state") == "training":
            return "the first model is training"
        waiting = self.training_.get("progress") or "no annotations yet"
        return (f"no model yet ({waiting}): the first one is trained as soon as {self.settings.min_labels} tasks are "
                "labeled with at least 2 different labels; until then each prediction is empty")

    def status(self) -> dict[str, Any]:
        with self.lock_:
            why = self._why_no_predictions()
            return {"project": self.project_id, "model_version": self.version, "training": dict(self.training_),
                    "predictions": "none" if why else "served", "why_no_predictions": why,
                    "versions": list(self.versions_), "labels": list(self.schema.labels),
                    "annotations_since_training": self.new_since_training_, "ledger_loop": self.recorder_.loop,
                    "acquisition_writes": self.writer_.stats(), "deferred_embeddings": self.deferral_.pending(),
                    "model_store": str(self.store_.dir),
                    "pay": (f"{self.settings.hourly_wage:g} {self.settings.currency}/h of lead_time" if self.settings.hourly_wage
                            else "unknown (--hourly-wage 0): no pay is recorded and the report computes no wage")}

    def close(self) -> None:
        """Stop the score writer and the deferred embedding (what is pending is dropped, with a log
        line; nothing waits on Label Studio or the model) and close the ledger; what it holds stays."""
        self.writer_.stop()
        self.deferral_.stop()
        self.recorder_.close()
