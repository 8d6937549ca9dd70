"""The Label Studio ML backend on <Text> tasks uses the loop's text model: ``model: auto`` is
sentence-embedding (the packaged all-MiniLM-L6-v2), the texts of a /predict call are embedded
once, and a fitted model survives the model store (the weights are not pickled with it)."""

from __future__ import annotations

import threading

import numpy as np

from clicloop.connectors.labelstudio.deferral import EmbedDeferral
from clicloop.connectors.labelstudio.engine import ProjectModel
from clicloop.connectors.labelstudio.labelset import parse_schema
from clicloop.connectors.labelstudio.modelstore import ModelStore
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from clicloop.orchestrator.training import embeddings
from clicloop.orchestrator.training.sentence_model import SentenceEmbedding, auto_model
from tests.orchestrator.training.texts import make_texts

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="intent" toName="text" choice="single"><Choice value="weather"/><Choice value="music"/><Choice value="restaurant"/></Choices>
</View>"""


def test_predict_embeds_the_texts_once_and_scores_them(tmp_path, monkeypatch):
    texts, labels = make_texts(8)
    registry = Registry(get_plugin_manager(load_entrypoints=False))
    settings = ServeSettings(token="t" * 16, loop="ml", ledger=f"sqlite:///{tmp_path / 'l.db'}")
    engine = ProjectModel(settings, 1, parse_schema(CONFIG), registry)
    X, kind = engine._features([{"text": t} for t in texts])
    assert kind == "text"
    name, _ = auto_model(kind)
    model = engine._create("model", name)
    assert isinstance(model, SentenceEmbedding)
    model.fit(X, np.asarray(labels))
    engine.lock_, engine.model_, engine.strategy_, engine.serving_ = threading.RLock(), model, engine._create("strategy"), "ml-v1"
    engine.deferral_ = EmbedDeferral(1, settings.predict_embed_limit, engine.warm_embeddings)
    calls = []
    real = embeddings.embed_texts
    monkeypatch.setattr("clicloop.orchestrator.training.sentence_model.embed_texts",
                        lambda t, *a, **k: calls.append(len(t)) or real(t, *a, **k))
    held_out, truth = make_texts(4, seed=3)
    predictions, scores = engine.predict([{"data": {"text": t}} for t in held_out])
    assert calls == [12]  # one embedding pass for the predictions and the acquisition scores
    chosen = [p["result"][0]["value"]["choices"][0] for p in predictions]
    assert np.mean(np.array(chosen) == np.array(truth)) >= 0.9
    assert len(scores) == 12 and all(0.0 <= s <= 1.0 for s in scores)


def test_a_stored_text_model_loads_and_predicts_the_same(tmp_path):
    texts, labels = make_texts(6)
    model = SentenceEmbedding().fit(texts, labels)
    store = ModelStore(tmp_path / "models", "ml.p1")
    store.save("ml-v1", model, {"trained_on": len(texts)})
    again = store.load("ml-v1")
    np.testing.assert_allclose(again.predict_proba(texts[:4]), model.predict_proba(texts[:4]), atol=1e-6)


def test_predict_reads_the_task_embeddings_training_stored_and_writes_none(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    texts, labels = make_texts(8)
    project, _ = make_texts(12, seed=5)  # 36 task texts
    registry = Registry(get_plugin_manager(load_entrypoints=False))
    settings = ServeSettings(token="t" * 16, loop="ml", ledger=f"sqlite:///{tmp_path / 'l.db'}")
    engine = ProjectModel(settings, 1, parse_schema(CONFIG), registry)
    model = SentenceEmbedding().fit(np.asarray(texts, dtype=object), np.asarray(labels))
    engine.lock_, engine.model_, engine.strategy_, engine.serving_ = threading.RLock(), model, engine._create("strategy"), "ml-v1"
    engine.deferral_ = EmbedDeferral(1, settings.predict_embed_limit, engine.warm_embeddings)
    engine.training_ = {"state": "idle", "progress": "trained on 8"}
    assert engine.warm_embeddings(model, list(project) + [None, 3]) == 36  # non-texts skipped
    assert engine.training_["progress"] == "trained on 8"
    stored = sorted((tmp_path / "cache" / "embeddings").rglob("*.npy"))
    computed = []
    real = embeddings._fill
    monkeypatch.setattr(embeddings, "_fill", lambda out, t, h, rows, *a: computed.append(len(rows)) or real(out, t, h, rows, *a))
    predictions, _ = engine.predict([{"data": {"text": t}} for t in project[:20]])
    assert computed == [] and len(predictions) == 20  # every row came from the cache
    engine.predict([{"data": {"text": "a text no task holds"}}])
    assert computed == [1]
    assert sorted((tmp_path / "cache" / "embeddings").rglob("*.npy")) == stored  # /predict wrote nothing
    fresh = SentenceEmbedding().encode(np.asarray(project[:20], dtype=object), cache=False)
    np.testing.assert_allclose(model.encode(np.asarray(project[:20], dtype=object)), fresh, atol=1e-5)


def test_a_cold_predict_embeds_at_most_the_limit_and_the_background_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    texts, labels = make_texts(8)
    project, _ = make_texts(4, seed=7)  # 12 task texts, none in the cache
    registry = Registry(get_plugin_manager(load_entrypoints=False))
    settings = ServeSettings(token="t" * 16, loop="ml", ledger=f"sqlite:///{tmp_path / 'l.db'}",
                             model_store=str(tmp_path / "models"), predict_embed_limit=5)
    engine = ProjectModel(settings, 1, parse_schema(CONFIG), registry).open(None, None)
    model = SentenceEmbedding().fit(np.asarray(texts, dtype=object), np.asarray(labels))
    engine.model_, engine.strategy_, engine.serving_ = model, engine._create("strategy"), "ml-v1"
    computed = []
    real = embeddings._fill
    monkeypatch.setattr(embeddings, "_fill", lambda out, t, h, rows, *a: computed.append(len(rows)) or real(out, t, h, rows, *a))
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(project)]
    predictions, scores = engine.predict(tasks)
    assert computed[0] == 5 and [bool(p["result"]) for p in predictions] == [True] * 5 + [False] * 7
    assert scores[5:] == [None] * 7
    assert engine.deferral_.wait_idle(120)
    computed.clear()
    again, _ = engine.predict(tasks)
    assert computed == [] and all(p["result"] for p in again)  # read from the cache the background wrote
    assert [again[i]["result"] for i in range(5)] == [predictions[i]["result"] for i in range(5)]  # the same labels
    engine.close()
