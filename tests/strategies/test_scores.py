import numpy as np
import pytest

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from clicloop.strategies.scores import entropy, least_confidence, margin
from clicloop.strategies.select import SelectContext, select, select_top_k

REGISTRY = Registry(get_plugin_manager(load_entrypoints=False))
STRATEGIES = REGISTRY.names("strategy")


class FixedProba:
    """A fake model whose probabilities are the first columns of X."""

    classes_ = np.array(["a", "b", "c"])

    def fit(self, X, y):
        return self

    def predict_proba(self, X):
        return np.asarray(X)[:, :3]


class FullModel(FixedProba):
    """A fake model offering everything a strategy may require (members, dropout samples)."""

    def predict_proba_members(self, X):
        P = np.asarray(X)[:, :3]
        sharp = P**2 / (P**2).sum(axis=1, keepdims=True)
        flat = np.sqrt(P) / np.sqrt(P).sum(axis=1, keepdims=True)
        return np.stack([P, sharp, flat])

    def predict_proba_samples(self, X, n_samples, rng):
        P = np.asarray(X)[:, :3]
        noise = rng.random((P.shape[0], n_samples, 3))  # drawn row after row: chunk-independent
        S = P[:, None, :] * (0.5 + noise)
        return (S / S.sum(axis=2, keepdims=True)).transpose(1, 0, 2)


SCORE_ONLY = [n for n in STRATEGIES if not callable(getattr(REGISTRY.create("strategy", n, {}), "select", None))]


def proba_rows(n=200, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(3), size=n)


@pytest.mark.parametrize("fn", [least_confidence, margin, entropy])
def test_uncertain_rows_score_higher_than_certain_ones(fn):
    P = np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.4, 0.1], [0.98, 0.01, 0.01], [1.0, 0.0, 0.0]])
    s = fn(P)
    assert s[0] > s[1] > s[2] > s[3]


def test_margin_is_one_minus_the_top_two_gap():
    P = np.array([[0.6, 0.3, 0.1]])
    assert margin(P)[0] == pytest.approx(0.7)


@pytest.mark.parametrize("name", SCORE_ONLY)
def test_every_strategy_scores_every_row_finitely_and_deterministically(name):
    strategy = REGISTRY.create("strategy", name, {})
    X = proba_rows()
    a = strategy.score(FullModel(), X, np.random.default_rng(1))
    b = strategy.score(FullModel(), X, np.random.default_rng(1))
    assert a.shape == (len(X),) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", STRATEGIES)
def test_selection_does_not_depend_on_chunk_size(name):
    strategy = REGISTRY.create("strategy", name, {})
    X = np.round(proba_rows(500), 2)  # rounding makes ties
    cand = np.arange(0, 500, 2)
    ctx = SelectContext(labeled=np.arange(1, 40, 2), seconds=lambda: {})
    picks = [select(strategy, FullModel(), X, cand, 17, np.random.default_rng(3), chunk_size=c, context=ctx) for c in (7, 64, 10_000)]
    for p in picks[1:]:
        np.testing.assert_array_equal(picks[0], p)
    assert set(picks[0]) <= set(cand) and len(set(picks[0])) == 17


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_repeats_with_the_seed_and_returns_the_pool_when_asked_for_more(name):
    strategy = REGISTRY.create("strategy", name, {})
    X = proba_rows(60, seed=4)
    cand = np.arange(5, 60)
    a = select(strategy, FullModel(), X, cand, 8, np.random.default_rng(9))
    b = select(strategy, FullModel(), X, cand, 8, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    everything = select(strategy, FullModel(), X, cand[:6], 50, np.random.default_rng(9))
    assert sorted(everything) == list(cand[:6])


def test_selector_returns_the_best_scores_best_first():
    X = proba_rows(300)
    chosen = select_top_k(REGISTRY.create("strategy", "margin", {}), FixedProba(), X, np.arange(300), 10, np.random.default_rng(0))
    scores = margin(X)
    np.testing.assert_allclose(np.sort(scores)[::-1][:10], scores[chosen])


def test_asking_for_more_than_the_pool_returns_the_pool():
    X = proba_rows(5)
    chosen = select_top_k(REGISTRY.create("strategy", "entropy", {}), FixedProba(), X, np.arange(5), 50, np.random.default_rng(0))
    assert sorted(chosen) == list(range(5))


def test_non_finite_scores_are_refused_with_the_items_named():
    X = proba_rows(10)
    X[4] = np.nan
    with pytest.raises(StrategyError, match=r"non-finite.*item-4"):
        select_top_k(REGISTRY.create("strategy", "margin", {}), FixedProba(), X, np.arange(10), 3,
                     np.random.default_rng(0), ids=np.array([f"item-{i}" for i in range(10)]))


@pytest.mark.parametrize("name", SCORE_ONLY)
def test_selection_does_not_depend_on_the_number_of_scoring_threads(name):
    strategy = REGISTRY.create("strategy", name, {})
    X = np.round(proba_rows(500, seed=2), 2)
    cand = np.arange(3, 500)
    picks = [select_top_k(strategy, FullModel(), X, cand, 23, np.random.default_rng(5), chunk_size=11, threads=t)
             for t in (1, 2, 4)]
    for p in picks[1:]:
        np.testing.assert_array_equal(picks[0], p)


class ThreadRecorder(FixedProba):
    def __init__(self):
        import threading

        self.threads, self.lock = set(), threading.Lock()

    def predict_proba(self, X):
        import threading
        import time

        with self.lock:
            self.threads.add(threading.current_thread().name)
        time.sleep(0.002)  # long enough that the pool's threads overlap
        return super().predict_proba(X)


def test_rng_free_strategies_score_chunks_on_several_threads_and_random_ones_in_order():
    X = proba_rows(400)
    margin_model = ThreadRecorder()
    select_top_k(REGISTRY.create("strategy", "margin", {}), margin_model, X, np.arange(400), 5, np.random.default_rng(0),
                 chunk_size=10, threads=3)
    assert len(margin_model.threads) > 1 and all(t.startswith("clicloop-score") for t in margin_model.threads)
    one = ThreadRecorder()
    select_top_k(REGISTRY.create("strategy", "margin", {}), one, X, np.arange(400), 5, np.random.default_rng(0),
                 chunk_size=10, threads=1)
    assert len(one.threads) == 1 and not next(iter(one.threads)).startswith("clicloop-score")
    with pytest.raises(StrategyError, match="threads must be at least 1"):
        select_top_k(REGISTRY.create("strategy", "margin", {}), FixedProba(), X, np.arange(400), 5,
                     np.random.default_rng(0), chunk_size=10, threads=0)
