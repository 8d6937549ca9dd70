"""The loop on a pool of raw texts with ``model: auto``: sentence embeddings (the packaged
all-MiniLM-L6-v2), margin-coverage on them, agreeing pseudo-labels, and texts in the tasks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.hookspecs import hookimpl
from clicloop.orchestrator.loop import Loop
from tests.orchestrator.training.texts import make_texts, write_csv

PURPOSE = "Sort short requests to a voice assistant by what the person wants."


def text_config(tmp_path, **overrides):
    texts, labels = make_texts(30)
    write_csv(tmp_path / "pool.csv", texts, labels)
    ev_texts, ev_labels = make_texts(10, seed=1)
    write_csv(tmp_path / "eval.csv", ev_texts, ev_labels, label_column="label", prefix="e")
    cfg = {
        "loop": {"name": "texts", "seed": 0, "batch_size": 5, "purpose": PURPOSE, "cold_start_labels": 0},
        "data": {"pool": {"path": str(tmp_path / "pool.csv"), "id": "id", "text": "text", "truth": "truth"},
                 "eval": {"path": str(tmp_path / "eval.csv"), "text": "text", "label": "label"}, "seed_size": 6},
        "backend": {"name": "simulated", "params": {"accuracy_mean": 0.999999, "careless_fraction": 0.0}},
        "stop": {"max_labels": 15},
        "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
    }
    cfg.update(overrides)
    return cfg


class Payloads:
    """Records what the tasks show people."""

    def __init__(self):
        self.payloads: list = []

    @hookimpl
    def clicloop_tasks_dispatched(self, loop, round_no, tasks):
        self.payloads += [t.payload for t in tasks]


def test_auto_on_a_text_pool_embeds_it_and_runs_the_numeric_defaults(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    from clicloop.orchestrator.plugins import get_plugin_manager

    pm = get_plugin_manager(load_entrypoints=False)
    seen = Payloads()
    pm.register(seen)
    loop = Loop(config_from_dict(text_config(tmp_path)), plugin_manager=pm)
    with caplog.at_level(logging.INFO, logger="clicloop"):
        results = loop.run()
    assert loop.model_name_ == "sentence-embedding"
    assert "model: sentence-embedding (text pool and sentence-transformers installed" in caplog.text
    assert loop.pool_.X.shape == (90, 384) and loop.evalset_.X.shape == (30, 384)
    assert loop.pseudo_ is not None  # pseudo-labels: auto is on, as on a numeric pool
    assert sum(r.answers for r in results) == 15 and results[-1].metric >= 0.9
    assert len(seen.payloads) == 15 and all(isinstance(p, str) and p in set(loop.pool_.texts) for p in seen.payloads)
    assert list((tmp_path / "cache" / "embeddings").iterdir())  # cached for the next loop on this pool


def test_tfidf_on_a_text_pool_keeps_texts_and_no_pseudo_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    loop = Loop(config_from_dict(text_config(tmp_path, model={"name": "tfidf-logreg"})))
    loop.run()
    assert loop.pool_.kind == "text" and loop.pool_.X.dtype == object and loop.pseudo_ is None
    assert not (tmp_path / "cache" / "embeddings").exists()


def test_clicloop_run_on_a_csv_of_texts(tmp_path):
    import yaml

    (tmp_path / "texts.yaml").write_text(yaml.safe_dump(text_config(tmp_path)))
    env = {"CLICLOOP_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "clicloop", "run", "texts.yaml"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={**os.environ, **env})
    assert run.returncode == 0, run.stderr
    assert "total: 15 answers" in run.stdout
    cached = sorted((tmp_path / "cache" / "embeddings").rglob("*.npy"))
    assert len(cached) == 4  # pool and evaluation set: matrix and hashes each
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = subprocess.run([sys.executable, "-m", "clicloop", "run", "texts.yaml", "--restart"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert again.returncode == 0, again.stderr
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "cache" / "embeddings").rglob("*.npy"))] == stamps


def _picks(tmp_path, strategy, head, head_params):
    model = {"name": "sentence-embedding", "params": {"head": head, "head_params": head_params}}
    loop = Loop(config_from_dict(text_config(tmp_path, model=model, strategy={"name": strategy})))
    results = loop.run()
    return loop, results


def _fitted(loop, head, head_params):
    """The loop's model kind fitted on the pool's true labels (embedded rows)."""
    from clicloop.orchestrator.training.sentence_model import sentence_embedding

    model = sentence_embedding(head=head, head_params=head_params)
    return model.fit(loop.pool_.X, np.asarray(loop.pool_.truth, dtype=str))


def test_bald_on_a_text_pool_with_an_mc_dropout_head(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    loop, results = _picks(tmp_path, "bald", "mc-dropout", {"hidden": 32, "epochs": 20, "dropout": 0.3})
    assert sum(r.answers for r in results) == 15  # BALD scored every round (it refuses a model without samples)
    model = _fitted(loop, "mc-dropout", {"hidden": 32, "epochs": 20, "dropout": 0.3})
    samples = model.predict_proba_samples(loop.pool_.texts[:4], 3, np.random.default_rng(0))  # texts are embedded
    assert samples.shape == (3, 4, len(model.classes_))
    assert not np.allclose(samples[0], samples[1])  # dropout on: the samples differ


def test_query_by_committee_on_a_text_pool_with_a_committee_head(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    loop, results = _picks(tmp_path, "qbc-vote-entropy", "committee", {"n_members": 3, "seed": 1})
    assert sum(r.answers for r in results) == 15
    model = _fitted(loop, "committee", {"n_members": 3, "seed": 1})
    members = model.predict_proba_members(loop.pool_.X[:4])
    assert members.shape == (3, 4, len(model.classes_))
    np.testing.assert_allclose(members.mean(axis=0), model.predict_proba(loop.pool_.X[:4]))


@pytest.mark.parametrize(("strategy", "head", "says"), [
    ("bald", "logreg", r"Monte-Carlo dropout samples \(model.params.head: mc-dropout"),
    ("qbc-vote-entropy", "mc-dropout", r"committee of at least two members \(model.params.head: committee"),
])
def test_a_strategy_the_head_cannot_serve_is_refused_before_the_pool_is_embedded(tmp_path, monkeypatch, strategy, head, says):
    from clicloop.orchestrator.training.sentence_model import SentenceEmbedding

    def never(*args, **kwargs):
        raise AssertionError("the pool was embedded before the strategy was refused")

    monkeypatch.setattr(SentenceEmbedding, "encode", never)
    model = {"name": "sentence-embedding", "params": {"head": head}}
    with pytest.raises(ConfigError, match=says):
        Loop(config_from_dict(text_config(tmp_path, model=model, strategy={"name": strategy}))).run()


@pytest.mark.parametrize(("params", "says"), [
    ({"head": "forest"}, "head must be one of logreg, committee, mc-dropout"),
    ({"head": "committee", "head_params": {"members": 3}}, "head_params do not fit head 'committee'"),
])
def test_a_bad_head_is_a_config_error_naming_the_field(tmp_path, params, says):
    model = {"name": "sentence-embedding", "params": params}
    with pytest.raises(ConfigError, match=says):
        Loop(config_from_dict(text_config(tmp_path, model=model))).run()


@pytest.mark.parametrize("model", ["logreg", "scaled-logreg"])
def test_a_numeric_model_on_a_text_pool_is_refused_naming_model_name_before_the_loop_registers(tmp_path, model):
    """Found 2026-12-07: numpy's "could not convert string to float" traceback, after the loop
    had registered (a trial fit swallowed it, the first real fit raised it)."""
    from clicloop.orchestrator.ledger import Ledger

    cfg = text_config(tmp_path, model={"name": model})
    with pytest.raises(ConfigError, match="needs numeric features and this data is text") as e:
        Loop(config_from_dict(cfg)).run()
    assert e.value.field == "model.name"
    with Ledger(cfg["ledger"]) as ledger:
        assert ledger.loops() == []
