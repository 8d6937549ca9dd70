"""A Label Studio ``/predict`` embeds at most ``predict_embed_limit`` texts the embedding cache
lacks (Label Studio gives up after 100 s): the other tasks get an empty prediction and no
acquisition score, their texts are embedded in the background, and the same request then
predicts every task (issue #24)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import pytest

from clicloop.connectors.labelstudio.engine import ProjectModel
from clicloop.connectors.labelstudio.labelset import parse_schema
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.connectors.labelstudio.writeback import score_updates
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from clicloop.orchestrator.training import embeddings

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single"><Choice value="billing"/><Choice value="delivery"/></Choices>
</View>"""


class EncodingModel:
    """A text model whose ``encode`` records the texts a request (``cache="read"``) computes;
    ``cache=True`` stores them (as ``warm_embeddings`` does). It cannot tell which are stored."""

    classes_ = np.array(["billing", "delivery"])

    def __init__(self) -> None:
        self.store: dict[str, np.ndarray] = {}
        self.computed: list[str] = []

    def encode(self, texts: Any, cache: bool | str = "read") -> np.ndarray:
        rows = []
        for t in map(str, texts):
            if t not in self.store and cache is not True:
                self.computed.append(t)
            row = self.store.get(t, np.array([1.0, 0.0]) if "invoice" in t else np.array([0.0, 1.0]))
            if cache is True:
                self.store[t] = row
            rows.append(row)
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2)

    def predict_proba(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return 0.8 * X + 0.1


class CountingModel(EncodingModel):
    """An :class:`EncodingModel` whose ``cached`` says which texts are stored."""

    def cached(self, texts: Any) -> np.ndarray:
        return np.array([str(t) in self.store for t in texts], dtype=bool)


@pytest.fixture
def engine(tmp_path):
    settings = ServeSettings(token="t" * 16, loop="ml", ledger=f"sqlite:///{tmp_path / 'l.db'}",
                             model_store=str(tmp_path / "models"), predict_embed_limit=3)
    model = ProjectModel(settings, 1, parse_schema(CONFIG), Registry(get_plugin_manager(load_entrypoints=False)))
    model.open(None, None)
    model.model_, model.strategy_, model.serving_ = CountingModel(), model._create("strategy"), "ml-v1"
    yield model
    model.close()


def _tasks(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "data": {"text": f"{'invoice' if i % 2 else 'parcel'} question {i}"}} for i in range(n)]


def test_predict_embeds_at_most_the_limit_and_defers_the_rest(engine, caplog):
    tasks = _tasks(8)
    engine.model_.store[tasks[5]["data"]["text"]] = np.array([1.0, 0.0])  # one text cached already
    with caplog.at_level(logging.WARNING, logger="clicloop.labelstudio.ml"):
        results, scores = engine.predict(tasks)
    assert engine.model_.computed == [tasks[i]["data"]["text"] for i in (0, 1, 2)]  # the limit: 3 texts
    assert len(results) == len(scores) == 8
    predicted = [i for i, r in enumerate(results) if r["result"]]
    assert predicted == [0, 1, 2, 5]
    assert [r["result"][0]["value"]["choices"] for r in results if r["result"]] == [["delivery"], ["billing"], ["delivery"], ["billing"]]
    for i in (3, 4, 6, 7):
        assert results[i] == {"result": [], "score": None, "model_version": "ml-v1"} and scores[i] is None
    assert all(isinstance(scores[i], float) for i in predicted)
    assert len([r for r in caplog.records if "defers 4 task(s)" in r.getMessage()]) == 1
    assert score_updates(tasks, scores, engine.version) == [(i, {**tasks[i]["data"], "clicloop_acquisition": round(scores[i], 6),
                                                                  "clicloop_model_version": "ml-v1"}) for i in predicted]

    assert engine.deferral_.wait_idle(30)
    assert engine.status()["deferred_embeddings"] == 0
    engine.model_.computed.clear()
    again, again_scores = engine.predict(tasks)
    assert engine.model_.computed == []  # every text came from the cache the background embedding filled
    assert all(r["result"] for r in again) and all(isinstance(s, float) for s in again_scores)
    assert [again[i] for i in predicted] == [results[i] for i in predicted]


def test_a_repeated_text_counts_once_and_a_retried_request_queues_nothing_new(engine):
    tasks = [{"id": i, "data": {"text": "parcel late" if i < 4 else f"invoice {i}"}} for i in range(8)]
    release, warmed = threading.Event(), []

    def warm(model: Any, texts: list[str]) -> int:  # held until released; embeds nothing, so they stay deferred
        release.wait(30)
        warmed.append(len(texts))
        return 0

    engine.deferral_.warm = warm
    results, _ = engine.predict(tasks)
    assert [bool(r["result"]) for r in results] == [True] * 6 + [False] * 2  # "parcel late" x4, invoice 4, invoice 5
    engine.predict(tasks)  # Label Studio retries while the first request's texts are being embedded
    assert engine.deferral_.pending() == 2
    release.set()
    assert engine.deferral_.wait_idle(30) and warmed == [8]  # one job: the whole request's texts


def test_a_model_that_cannot_tell_its_cache_embeds_every_text(engine):
    engine.model_ = EncodingModel()
    results, _ = engine.predict(_tasks(6))
    assert all(r["result"] for r in results) and len(engine.model_.computed) == 6


def test_a_negative_limit_is_refused():
    with pytest.raises(ConfigError, match="predict_embed_limit"):
        ServeSettings(token="t" * 16, predict_embed_limit=-1)


def test_cached_mask_finds_the_cached_texts_without_computing(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    texts = np.array(["one", "two", "three"], dtype=object)
    hashes = embeddings.text_hashes(texts[:2])
    matrix, hash_file = embeddings.cache_files(hashes, "some-model")
    np.save(matrix, np.zeros((2, 4), dtype=np.float32))
    np.save(hash_file, hashes)
    monkeypatch.setattr(embeddings, "_encoder", lambda *a: pytest.fail("cached_mask computed an embedding"))
    assert embeddings.cached_mask(texts, "some-model").tolist() == [True, True, False]
    assert embeddings.cached_mask(texts, "another-model").tolist() == [False, False, False]


def test_the_background_embedding_starts_after_the_requests_own(engine):
    """Found in CI: the deferred texts' embedding began while the request still embedded its own,
    so the two competed for the CPU inside the request (and the real-model test saw the
    background's 12 texts computed first)."""
    events: list[str] = []
    model = engine.model_
    encode = model.encode

    def slow_encode(texts: Any, cache: bool | str = "read") -> np.ndarray:
        if cache == "read":
            events.append("request starts")
            threading.Event().wait(0.3)  # time for a background thread, had one started, to begin
            events.append("request done")
        return encode(texts, cache=cache)

    def warm(m: Any, texts: list[str]) -> int:
        events.append("background")
        return 0

    model.encode, engine.deferral_.warm = slow_encode, warm
    engine.predict([{"id": i, "data": {"text": f"invoice {i}"}} for i in range(6)])
    assert engine.deferral_.wait_idle(30)
    assert events == ["request starts", "request done", "background"]
