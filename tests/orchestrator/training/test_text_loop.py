"""The loop on a pool of raw texts with ``model: auto``: sentence embeddings (the packaged
all-MiniLM-L6-v2), margin-coverage on them, agreeing pseudo-labels, and texts in the tasks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from clicloop.orchestrator.config import config_from_dict
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
