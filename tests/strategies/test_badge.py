"""BADGE (Ash et al. 2020): factorised gradient distances, seeding and the strategy contract."""

import numpy as np
import pytest

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from clicloop.strategies.badge import Badge, badge_seeding, gradient_factors, sq_dist_to_center
from clicloop.strategies.select import select


class LinearSoftmax:
    """softmax(X W + b) with fixed random weights."""

    def __init__(self, d: int, c: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.W, self.b = rng.normal(size=(d, c)), rng.normal(size=c)
        self.classes_ = np.arange(c)

    def predict_proba(self, X):
        z = np.asarray(X, dtype=np.float64) @ self.W + self.b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def pool(n=300, d=6, c=4, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return X, LinearSoftmax(d, c, seed)


@pytest.mark.parametrize("intercept", [True, False])
def test_factorised_distance_equals_the_explicit_gradient_embedding_distance(intercept):
    X, model = pool(n=40)
    A, Xf = gradient_factors(model.predict_proba(X), X, intercept)
    P = model.predict_proba(X)
    onehot = np.eye(P.shape[1])[P.argmax(axis=1)]
    feats = np.hstack([X, np.ones((len(X), 1))]) if intercept else X.astype(np.float64)
    G = np.einsum("nc,nd->ncd", P - onehot, feats).reshape(len(X), -1)  # the explicit C x d embedding
    sq_norm = np.einsum("ij,ij->i", A, A) * np.einsum("ij,ij->i", Xf, Xf, dtype=np.float64)
    np.testing.assert_allclose(sq_norm, (G**2).sum(axis=1), rtol=1e-5)
    for c in (0, 7, 39):
        explicit = ((G - G[c]) ** 2).sum(axis=1)
        np.testing.assert_allclose(sq_dist_to_center(A, Xf, sq_norm, c), explicit, rtol=1e-4, atol=1e-5)


def test_seeding_starts_at_the_largest_gradient_and_never_repeats():
    X, model = pool()
    A, Xf = gradient_factors(model.predict_proba(X), X)
    picks = badge_seeding(A, Xf, 25, np.random.default_rng(0))
    norms = (A**2).sum(axis=1) * (Xf.astype(np.float64) ** 2).sum(axis=1)
    assert picks[0] == int(np.argmax(norms))
    assert len(set(picks.tolist())) == 25


def test_same_seed_same_picks_and_k_distinct_pool_indices():
    X, model = pool()
    cand = np.arange(20, 300)
    for strategy in (Badge(factor=0), Badge(), Badge(factor=3)):  # paper (all candidates), default, prefilter
        a = select(strategy, model, X, cand, 15, np.random.default_rng(5))
        b = select(strategy, model, X, cand, 15, np.random.default_rng(5))
        np.testing.assert_array_equal(a, b)
        assert len(set(a.tolist())) == 15 and set(a) <= set(cand)


def test_asking_for_more_than_the_pool_returns_the_pool():
    X, model = pool(n=30)
    cand = np.arange(10, 18)
    assert sorted(select(Badge(), model, X, cand, 50, np.random.default_rng(0))) == list(cand)


def test_duplicate_items_still_give_distinct_picks():
    X = np.repeat(pool(n=3)[0], 10, axis=0)  # 3 distinct rows, 10 copies each
    model = pool(n=3)[1]
    chosen = select(Badge(factor=0), model, X, np.arange(30), 12, np.random.default_rng(1))
    assert len(set(chosen.tolist())) == 12


def test_prefilter_keeps_the_picks_among_the_most_uncertain():
    from clicloop.strategies.scores import margin

    X, model = pool(n=400)
    chosen = select(Badge(factor=2), model, X, np.arange(400), 10, np.random.default_rng(0))
    short = np.argsort(-margin(model.predict_proba(X)))[:20]
    assert set(chosen) <= set(short)


def test_fails_clearly_without_features_or_model_or_with_nan():
    texts = np.array(["a text", "another", "third"], dtype=object)
    with pytest.raises(StrategyError, match="numeric features"):
        select(Badge(), LinearSoftmax(2, 3), texts, np.arange(3), 2, np.random.default_rng(0))
    X, model = pool(n=20)
    with pytest.raises(StrategyError, match="fitted model"):
        select(Badge(), None, X, np.arange(20), 2, np.random.default_rng(0))
    X[4, 1] = np.nan
    with pytest.raises(StrategyError, match=r"non-finite.*item-4"):
        select(Badge(), model, X, np.arange(20), 2, np.random.default_rng(0), ids=np.array([f"item-{i}" for i in range(20)]))
    with pytest.raises(ValueError):
        Badge(factor=-1)


def test_registered_and_names_its_requirements():
    from clicloop.strategies.requirements import unmet

    strategy = Registry(get_plugin_manager(load_entrypoints=False)).create("strategy", "badge", {"factor": 5})
    assert isinstance(strategy, Badge) and strategy.factor == 5
    assert set(strategy.requires) == {"predict_proba", "features"}
    assert any("numeric features" in p for p in unmet(strategy, LinearSoftmax(2, 3), np.array(["a"], dtype=object)))


def test_a_loop_runs_with_badge(tmp_path):
    from clicloop import Loop, config_from_dict
    from tests.conftest import digits_config

    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'b.db'}", strategy={"name": "badge"},
                                         stop={"max_labels": 40}))
    results = Loop(cfg).run()
    assert results[-1].n_labeled >= 40 and results[-1].metric is not None
