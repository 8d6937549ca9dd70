"""The fused linear path, streaming pools (memory-mapped .npy, Parquet) and the modAL adapter."""

import sys

import numpy as np
import pytest

from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from clicloop.strategies.linear import fused_scores, linear_head
from clicloop.strategies.pools import iter_chunks, stream_top_k
from clicloop.strategies.scores import Entropy, LeastConfidence, Margin, RandomSampling, entropy, least_confidence, margin
from clicloop.strategies.select import select, select_top_k

MEASURES = {"margin": margin, "entropy": entropy, "least-confidence": least_confidence}


@pytest.fixture(scope="module")
def fitted():
    from sklearn.datasets import load_digits

    from clicloop.orchestrator.training.models import logreg, scaled_logreg

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y, {"logreg": logreg().fit(X[:200], y[:200]), "scaled": scaled_logreg().fit(X[:200], y[:200]),
                                     "binary": logreg().fit(X[:200], y[:200] > 4)}


@pytest.mark.parametrize("which", ["logreg", "scaled", "binary"])
@pytest.mark.parametrize("measure", sorted(MEASURES))
def test_fused_scores_match_predict_proba(fitted, which, measure):
    X, _, models = fitted
    W, b = linear_head(models[which])
    np.testing.assert_allclose(fused_scores(X, W, b, measure), MEASURES[measure](models[which].predict_proba(X)), atol=2e-5)


def _softmax64(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("scale, offset", [(1.0, 0.0), (10.0, 0.0), (1.0, -300.0), (1.0, 300.0), (0.1, -79.0)])
@pytest.mark.parametrize("measure", sorted(MEASURES))
def test_fused_scores_hold_for_logits_beyond_float32_exp_range(fitted, measure, scale, offset):
    """Blocks whose top logits leave exp's safe range take the shifted softmax; the others skip it."""
    X, _, models = fitted
    W, b = linear_head(models["scaled"])
    W, b = W * scale, b * scale + offset  # an offset on every class leaves the softmax unchanged
    expected = MEASURES[measure](_softmax64(X.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)))
    got = fused_scores(X, W, b, measure)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_non_linear_models_take_the_generic_path(fitted):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X, y, _ = fitted
    assert linear_head(make_pipeline(MinMaxScaler(), __import__("sklearn.linear_model").linear_model.LogisticRegression()).fit(X[:100], y[:100])) is None
    assert linear_head(object()) is None


def test_fused_selection_picks_the_same_items_as_predict_proba(fitted):
    X, _, models = fitted

    class Opaque:  # same probabilities, but not recognisably linear
        classes_ = models["scaled"].classes_

        def predict_proba(self, Z):
            return models["scaled"].predict_proba(Z)

    for strategy in (Margin(), Entropy(), LeastConfidence()):
        fast = select_top_k(strategy, models["scaled"], X, np.arange(len(X)), 30, np.random.default_rng(0))
        slow = select_top_k(strategy, Opaque(), X, np.arange(len(X)), 30, np.random.default_rng(0))
        assert len(set(fast) ^ set(slow)) <= 2  # float32 rounding may swap a near-tie at the boundary


@pytest.mark.parametrize("strategy", [Margin(), RandomSampling()])
def test_streaming_a_memory_mapped_pool_picks_what_the_in_memory_selector_picks(tmp_path, fitted, strategy):
    X, _, models = fitted
    np.save(tmp_path / "pool.npy", X)
    exclude = np.arange(0, len(X), 3)
    cand = np.setdiff1d(np.arange(len(X)), exclude)
    want = select_top_k(strategy, models["scaled"], X, cand, 25, np.random.default_rng(4), chunk_size=500)
    got = stream_top_k(strategy, models["scaled"], tmp_path / "pool.npy", 25, np.random.default_rng(4), chunk_size=97, exclude=exclude)
    np.testing.assert_array_equal(want, got)


def test_streaming_a_parquet_pool_reads_it_batch_by_batch(tmp_path, fitted):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, _, models = fitted
    table = pa.table({f"f{j}": X[:, j] for j in range(X.shape[1])} | {"id": np.arange(len(X))})
    pq.write_table(table, tmp_path / "pool.parquet", row_group_size=300)
    cols = [f"f{j}" for j in range(X.shape[1])]
    sizes = [rows.shape[0] for _, rows in iter_chunks(tmp_path / "pool.parquet", 128, cols)]
    assert max(sizes) <= 128 and sum(sizes) == len(X)
    want = select_top_k(Margin(), models["scaled"], X, np.arange(len(X)), 10, np.random.default_rng(1))
    got = stream_top_k(Margin(), models["scaled"], tmp_path / "pool.parquet", 10, np.random.default_rng(1), chunk_size=128, columns=cols)
    np.testing.assert_array_equal(want, got)
    emb = pa.table({"emb": pa.array(list(X[:50]), type=pa.list_(pa.float32()))})
    pq.write_table(emb, tmp_path / "emb.parquet")
    np.testing.assert_array_equal(np.vstack([r for _, r in iter_chunks(tmp_path / "emb.parquet", 16)]), X[:50])


def test_modal_names_are_registered_without_importing_modal():
    names = Registry(get_plugin_manager(load_entrypoints=False)).names("strategy")
    assert {"modal:margin_sampling", "modal:uncertainty_batch_sampling", "modal:vote_entropy_sampling"} <= set(names)
    import subprocess

    code = ("import sys; from clicloop.orchestrator.plugins import Registry, get_plugin_manager; "
            "Registry(get_plugin_manager(load_entrypoints=False)).create('strategy', 'modal:margin_sampling', {}); "
            "print('modAL' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_modal_margin_picks_what_clicloop_margin_picks(fitted):
    X, _, models = fitted
    registry = Registry(get_plugin_manager(load_entrypoints=False))
    cand = np.arange(100, len(X))
    ours = select(Margin(), models["logreg"], X, cand, 20, np.random.default_rng(0))
    theirs = select(registry.create("strategy", "modal:margin_sampling", {}), models["logreg"], X, cand, 20, np.random.default_rng(0))
    assert len(set(ours) ^ set(theirs)) <= 2
    batch = select(registry.create("strategy", "modal:uncertainty_batch_sampling", {}), models["logreg"], X, cand, 7,
                   np.random.default_rng(0))
    assert len(set(batch)) == 7 and set(batch) <= set(cand)
