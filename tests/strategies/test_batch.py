"""Batch-aware strategies, committees, BALD, cost-aware selection and the requirement checks."""

import numpy as np
import pytest

from clicloop import Loop, config_from_dict
from clicloop.orchestrator.errors import ConfigError, StrategyError
from clicloop.strategies.committee import Committee, KLToConsensus, VoteEntropy, kl_to_consensus, vote_entropy
from clicloop.strategies.cost import CostAware, SecondsModel, item_feature
from clicloop.strategies.coverage import DiverseMiniBatch, MarginCoverage
from clicloop.strategies.diversity import ClusterMargin, ColdStart, KCenterGreedy, k_center_greedy, kmeans_pp
from clicloop.strategies.requirements import unmet
from clicloop.strategies.scores import Margin, margin
from clicloop.strategies.select import SelectContext, select
from clicloop.strategies.torch_models import BALD, MCDropoutMLP, bald
from tests.conftest import digits_config


def blobs(n_per=40, centers=((0, 0), (10, 0), (0, 10), (10, 10)), seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(c, 0.5, (n_per, 2)) for c in centers]).astype(np.float32)
    return X, np.repeat(np.arange(len(centers)), n_per)


def test_k_center_greedy_covers_every_cluster_before_repeating_one():
    X, y = blobs()
    picks = k_center_greedy(X, 4, first=0)
    assert sorted(y[picks]) == [0, 1, 2, 3]


def test_k_center_starts_away_from_the_labeled_items():
    X, y = blobs()
    labeled = np.flatnonzero(y < 3)[:6]
    chosen = select(KCenterGreedy(), None, X, np.setdiff1d(np.arange(len(y)), labeled), 1, np.random.default_rng(0),
                    context=SelectContext(labeled=labeled))
    assert y[chosen[0]] == 3 or y[chosen[0]] not in set(y[labeled])


def test_kmeans_pp_never_picks_a_row_twice_and_spreads_out():
    X, y = blobs()
    picks = kmeans_pp(X, 4, np.random.default_rng(1))
    assert len(set(picks)) == 4 and sorted(y[picks]) == [0, 1, 2, 3]


def test_greedy_kmeans_pp_covers_the_rows_better_than_plain_seeding():
    X = np.random.default_rng(0).normal(size=(400, 5)).astype(np.float32)

    def potential(picks):
        return float(((X[:, None, :] - X[picks][None, :, :]) ** 2).sum(-1).min(1).sum())

    plain = [potential(kmeans_pp(X, 8, np.random.default_rng(s))) for s in range(20)]
    greedy = [potential(kmeans_pp(X, 8, np.random.default_rng(s), trials=5)) for s in range(20)]
    assert np.mean(greedy) < 0.97 * np.mean(plain)
    assert len(set(kmeans_pp(X, 50, np.random.default_rng(0), trials=5))) == 50
    every = [kmeans_pp(X, 8, np.random.default_rng(s), trials=0, first=0) for s in range(3)]
    assert all(np.array_equal(e, every[0]) for e in every)  # no draws after the fixed first pick
    assert potential(every[0]) < np.mean(greedy)
    assert len(set(kmeans_pp(X, 400, np.random.default_rng(0), trials=0, first=0))) == 400


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_greedy_coverage_is_lazy_but_picks_what_the_plain_greedy_loop_picks(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 6)).astype(np.float64)
    X[rng.integers(0, 300, 40)] = X[rng.integers(0, 300, 40)]  # duplicates: a twin of a pick lowers nothing
    w = rng.uniform(0.1, 1.0, 300)

    def plain(k):  # every candidate evaluated at every step
        d2 = ((X - X[0]) ** 2).sum(1)
        picks = [0]
        D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
        for _ in range(k - 1):
            cost = (np.minimum(D, d2[None, :]) * w).sum(1)
            cost[picks] = np.inf
            picks.append(int(np.argmin(cost)))
            d2 = np.minimum(d2, D[picks[-1]])
        return picks

    lazy = kmeans_pp(X.astype(np.float32), 25, np.random.default_rng(0), first=0, weights=w, trials=0)
    assert list(lazy) == plain(25)


def test_greedy_coverage_past_its_table_size_computes_rows_as_needed_and_picks_the_same(monkeypatch):
    import clicloop.strategies.diversity as diversity

    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 8)).astype(np.float32)
    w = rng.uniform(0.5, 1.0, 500)
    with_table = kmeans_pp(X, 20, np.random.default_rng(0), first=0, weights=w, trials=0)
    monkeypatch.setattr(diversity, "COVER_TABLE_BYTES", 0)  # as a shortlist too large for the table
    np.testing.assert_array_equal(kmeans_pp(X, 20, np.random.default_rng(0), first=0, weights=w, trials=0), with_table)


class TwoBlobModel:
    """Uncertain about x near 5 (between the blobs), sure elsewhere."""

    classes_ = np.array(["l", "r"])

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-(np.asarray(X)[:, 0] - 5.0) * 3))
        return np.column_stack([1 - p, p])


@pytest.mark.parametrize("strategy", [ClusterMargin(factor=10), ClusterMargin(factor=10, trials=0),
                                      MarginCoverage(factor=10), DiverseMiniBatch(factor=10)], ids=repr)
def test_margin_then_diversity_picks_uncertain_items_spread_along_the_boundary(strategy):
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 10, 2000), rng.uniform(0, 100, 2000)]).astype(np.float32)
    chosen = select(strategy, TwoBlobModel(), X, np.arange(2000), 5, np.random.default_rng(0))
    short = np.argsort(-margin(TwoBlobModel().predict_proba(X)))[:50]
    assert len(set(chosen)) == 5 and set(chosen) <= set(short)
    assert np.ptp(X[chosen, 1]) > 40  # spread along the boundary, not one clump
    if not isinstance(strategy, DiverseMiniBatch):  # the others start from the smallest margin
        assert chosen[0] == select(Margin(), TwoBlobModel(), X, np.arange(2000), 1, np.random.default_rng(0))[0]


def test_diverse_mini_batch_on_repeated_points_picks_k_items_without_a_warning():
    """Found 2026-12-06: tied or repeated points passed scikit-learn's "Number of distinct clusters
    (1) found smaller than n_clusters" to the user, though the picks handle it."""
    import warnings

    X = np.repeat(np.array([[5.0, 1.0], [5.0, 2.0]], dtype=np.float32), 30, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = select(DiverseMiniBatch(factor=10), TwoBlobModel(), X, np.arange(60), 5, np.random.default_rng(0))
    assert len(set(chosen.tolist())) == 5


def test_cold_start_takes_one_typical_item_per_uncovered_cluster():
    X, y = blobs(n_per=60)
    chosen = select(ColdStart(), None, X, np.arange(len(y)), 4, np.random.default_rng(0))
    assert sorted(y[chosen]) == [0, 1, 2, 3]
    centroid_dist = [np.linalg.norm(X[i] - X[y == y[i]].mean(axis=0)) for i in chosen]
    assert max(centroid_dist) < 0.5  # typical, not outliers
    labeled = np.flatnonzero(y == 0)[:3]
    chosen = select(ColdStart(), None, X, np.setdiff1d(np.arange(len(y)), labeled), 3, np.random.default_rng(0),
                    context=SelectContext(labeled=labeled))
    assert sorted(y[chosen]) == [1, 2, 3]


def test_margin_coverage_is_weighted_greedy_cluster_margin_on_features_and_margin_on_text():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 10, 2000), rng.uniform(0, 100, 2000)]).astype(np.float32)
    picks = select(MarginCoverage(factor=10), TwoBlobModel(), X, np.arange(2000), 5, np.random.default_rng(3))
    same = select(ClusterMargin(factor=10, trials=0, weighted=True), TwoBlobModel(), X, np.arange(2000), 5,
                  np.random.default_rng(3))
    np.testing.assert_array_equal(picks, same)

    class TextModel:  # reads the number at the start of each text
        classes_ = np.array(["l", "r"])

        def predict_proba(self, texts):
            return TwoBlobModel().predict_proba(np.array([[float(t.split()[0])] for t in texts]))

    texts = np.array([f"{x:.3f} some words" for x in X[:, 0]], dtype=object)
    assert unmet(MarginCoverage(), TextModel(), texts) == []
    on_text = select(MarginCoverage(), TextModel(), texts, np.arange(2000), 5, np.random.default_rng(3))
    np.testing.assert_array_equal(on_text, select(Margin(), TextModel(), texts, np.arange(2000), 5, np.random.default_rng(3)))

def test_margin_coverage_leans_towards_the_least_sure_items_with_its_weight_power():
    """The cover weighs each shortlisted item by its margin score to the power ``weight_power``:
    at 4, two very unsure items outweigh six fairly unsure ones, which the score itself (power 1,
    the default) lets win by their number."""

    class ReadsP:  # column 2 holds P(class 1) / 1000
        classes_ = np.array([0, 1])

        def predict_proba(self, X):
            p = np.asarray(X)[:, 2] * 1000.0
            return np.column_stack([1 - p, p])

    rng = np.random.default_rng(0)
    centre = [[0.0, 0.0, 0.5e-3]]  # score 1: the first pick
    many = np.column_stack([10 + rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 6), np.full(6, 0.7e-3)])  # score 0.6
    few = np.column_stack([-10 + rng.normal(0, 0.1, 2), rng.normal(0, 0.1, 2), np.full(2, 0.525e-3)])  # score 0.95
    X = np.vstack([centre, many, few]).astype(np.float64)
    everything = np.arange(len(X))
    sharp = select(MarginCoverage(factor=10, weight_power=4), ReadsP(), X, everything, 2, np.random.default_rng(0))
    plain = select(MarginCoverage(factor=10), ReadsP(), X, everything, 2, np.random.default_rng(0))
    assert sharp[0] == plain[0] == 0
    assert sharp[1] >= 7 and 1 <= plain[1] <= 6
    with pytest.raises(ValueError, match="weight_power"):
        MarginCoverage(weight_power=0)


def test_margin_coverage_scores_the_pool_once():
    """The shortlist's margins weigh the cover as they come from the pool's scoring pass: the
    model sees each candidate once (it saw the shortlist twice before, 2026-12-06)."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 10, 2000), rng.uniform(0, 100, 2000)]).astype(np.float32)
    seen = []

    class Counting(TwoBlobModel):
        def predict_proba(self, X):
            seen.append(len(X))
            return super().predict_proba(X)

    picks = select(MarginCoverage(factor=10), Counting(), X, np.arange(2000), 5, np.random.default_rng(3))
    assert sum(seen) == 2000
    np.testing.assert_array_equal(picks, select(MarginCoverage(factor=10), TwoBlobModel(), X, np.arange(2000), 5,
                                                np.random.default_rng(3)))


def test_margin_coverage_covers_around_the_items_pending_in_someones_hands():
    """Continuous mode: items asked and in someone's hands (``SelectContext.pending``) count as
    chosen, so the batch goes to the uncertain region they leave uncovered."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 10, 2000), rng.uniform(0, 100, 2000)]).astype(np.float32)
    model = TwoBlobModel()
    near = np.flatnonzero(np.abs(X[:, 0] - 5) < 0.3)
    pending = near[X[near, 1] < 50][:20]  # the lower half of the boundary is being asked
    candidates = np.setdiff1d(np.arange(2000), pending)
    held = SelectContext(pending=pending)
    around = select(MarginCoverage(factor=10, pending=True), model, X, candidates, 3, np.random.default_rng(3), context=held)
    assert (X[around, 1] > 50).all()
    plain = select(MarginCoverage(factor=10), model, X, candidates, 3, np.random.default_rng(3))
    assert (X[plain, 1] < 50).any()  # without them: the lower half again
    off = select(MarginCoverage(factor=10), model, X, candidates, 3, np.random.default_rng(3), context=held)  # the default
    np.testing.assert_array_equal(off, plain)


def test_margin_coverage_covers_only_the_uncertain_part_of_its_shortlist_with_max_gap():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 10, 2000), rng.uniform(0, 100, 2000)]).astype(np.float32)
    model, everything = TwoBlobModel(), np.arange(2000)
    gaps = 1 - margin(model.predict_proba(X))
    top = select(Margin(), model, X, everything, 5, np.random.default_rng(3))
    assert (gaps <= 0.005).sum() < 5  # fewer uncertain items than the batch: margin's own top 5
    assert set(select(MarginCoverage(factor=10, max_gap=0.005), model, X, everything, 5, np.random.default_rng(3))) == set(top)
    wide = select(MarginCoverage(factor=10, max_gap=1.0), model, X, everything, 5, np.random.default_rng(3))
    np.testing.assert_array_equal(wide, select(MarginCoverage(factor=10), model, X, everything, 5, np.random.default_rng(3)))
    some = select(MarginCoverage(factor=10, max_gap=0.1), model, X, everything, 5, np.random.default_rng(3))
    assert (gaps[some] <= 0.1).all() and len(set(some)) == 5
    with pytest.raises(ValueError, match="max_gap"):
        MarginCoverage(max_gap=0)


def test_committee_disagreement_measures():
    agree = np.array([[[0.9, 0.1]], [[0.9, 0.1]], [[0.9, 0.1]]])
    split = np.array([[[0.9, 0.1]], [[0.1, 0.9]], [[0.9, 0.1]], [[0.1, 0.9]]])
    assert vote_entropy(agree)[0] == 0 and vote_entropy(split)[0] == pytest.approx(np.log(2))
    assert kl_to_consensus(agree)[0] == pytest.approx(0) and kl_to_consensus(split)[0] > 0.3


def test_committee_model_members_align_with_its_classes():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    c = Committee(n_members=3, seed=0).fit(X[:60], y[:60].astype(str))
    members = c.predict_proba_members(X[:20])
    assert members.shape == (3, 20, len(c.classes_))
    np.testing.assert_allclose(members.sum(axis=2), 1.0)
    for s in (VoteEntropy(), KLToConsensus()):
        assert np.isfinite(s.score(c, X[:20], np.random.default_rng(0))).all()


def test_bald_is_zero_when_samples_agree_and_positive_when_they_disagree():
    same = np.tile(np.array([[[0.5, 0.5]]]), (4, 1, 1))
    differ = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]], [[0.0, 1.0]]])
    assert bald(same)[0] == pytest.approx(0) and bald(differ)[0] == pytest.approx(np.log(2))


@pytest.mark.slow  # torch import and a short training: several seconds on a loaded 2-core machine
def test_mc_dropout_model_learns_and_samples_repeat_with_the_seed():
    X, y = blobs(n_per=30)
    m = MCDropoutMLP(hidden=16, epochs=40, lr=2e-2, dropout=0.2, batch_size=64, seed=0).fit(X, y.astype(str))
    assert (m.classes_[m.predict_proba(X).argmax(1)] == y.astype(str)).mean() > 0.9
    a = BALD(n_samples=5).score(m, X, np.random.default_rng(2))
    b = BALD(n_samples=5).score(m, X, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (len(y),) and (a >= 0).all()


@pytest.mark.slow  # torch import and a short training
def test_mc_dropout_model_keeps_a_feature_constant_on_its_labels_harmless():
    # a feature that is constant on the labeled items (a blank border pixel) must not blow up the
    # predictions for a later item that differs there: it keeps scale 1, as in StandardScaler
    X, y = blobs(n_per=30)
    X = np.hstack([X, np.zeros((len(X), 1), dtype=X.dtype)])
    m = MCDropoutMLP(hidden=16, epochs=40, lr=2e-2, dropout=0.2, batch_size=64, seed=0).fit(X, y.astype(str))
    odd = X.copy()
    odd[:, -1] = 1.0
    np.testing.assert_allclose(m.predict_proba(odd), m.predict_proba(X), atol=0.2)
    assert (m.classes_[m.predict_proba(odd).argmax(1)] == y.astype(str)).mean() > 0.9


def test_requirements_name_what_is_missing():
    texts = np.array(["a short text", "another"], dtype=object)
    assert any("numeric features" in p for p in unmet(KCenterGreedy(), None, texts))
    assert any("dropout" in p for p in unmet(BALD(), MCDropoutMLP(dropout=0.0), np.zeros((2, 2))))
    assert any("committee" in p for p in unmet(VoteEntropy(), Committee(n_members=1), np.zeros((2, 2))))
    assert unmet(VoteEntropy(), Committee(n_members=3), np.zeros((2, 2))) == []


@pytest.mark.parametrize("strategy, model, needed", [
    ({"name": "bald"}, {"name": "mc-dropout-mlp", "params": {"dropout": 0.0}}, "dropout"),
    ({"name": "qbc-vote-entropy"}, {"name": "committee", "params": {"n_members": 1}}, "committee"),
    ({"name": "bald"}, {"name": "auto"}, "dropout"),
])
def test_a_loop_refuses_a_strategy_its_model_cannot_serve_before_any_work(tmp_path, strategy, model, needed):
    db = tmp_path / "l.db"
    cfg = config_from_dict(digits_config(f"sqlite:///{db}", strategy=strategy, model=model))
    with pytest.raises(ConfigError, match=needed):
        Loop(cfg).run()
    assert not db.exists() or db.stat().st_size == 0


def test_a_loop_runs_with_cluster_margin_and_cold_start(tmp_path):
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'c.db'}", strategy={"name": "cluster-margin"},
                                         data={"builtin": "digits", "seed_size": 0}, stop={"max_labels": 30}))
    results = Loop(cfg).run()
    assert results[-1].n_labeled >= 30 and results[-1].metric is not None


def test_cold_start_labels_keep_picking_by_coverage_until_enough_are_labeled(tmp_path, caplog):
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'w.db'}", loop={"cold_start_labels": 40},
                                         stop={"max_labels": 60}))
    with caplog.at_level("INFO", logger="clicloop"):
        results = Loop(cfg).run()
    cold = [m for m in caplog.messages if "cold start" in m]
    # seed 20 labels, batches of 10: rounds start at 20 and 30 labeled (< 40) by coverage, then margin
    assert len(cold) == 2 and all("ColdStart" in m for m in cold), caplog.messages
    assert results[-1].n_labeled >= 60


def test_the_default_first_round_picks_typical_items_then_the_strategy_takes_over(tmp_path, caplog):
    """loop.cold_start_labels: auto (the default since 2026-12-05): round 0, which the seed model
    alone would choose, picks by pool coverage; every later round by the strategy. Its picks are
    ColdStart's, with the round's seeded generator."""
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.seeding import rng_for

    url = f"sqlite:///{tmp_path / 'a.db'}"
    cfg = config_from_dict(digits_config(url, stop={"max_labels": 50}))
    assert cfg.loop.cold_start_labels == "auto"
    with caplog.at_level("INFO", logger="clicloop"):
        loop = Loop(cfg)
        loop.run()
    cold = [m for m in caplog.messages if "cold start" in m]
    assert len(cold) == 1 and cold[0].startswith("round 0: cold start (the first round") and "ColdStart" in cold[0]
    X, index = loop.pool_.X, loop.index_
    labeled = np.sort([index[i] for i in loop.pool_.seed_labels])
    expected = ColdStart().select(None, X, np.setdiff1d(np.arange(len(X)), labeled), 10, rng_for(0, "select", 0),
                                  chunk_size=65536, ids=loop.pool_.ids, context=SelectContext(labeled=labeled))
    with Ledger(url) as ledger:
        picked = {row["item_id"] for row in ledger.tasks("t", 0)}
    assert picked == {loop.pool_.ids[i] for i in expected}


def test_the_default_keeps_covering_while_there_are_fewer_than_two_labels_a_class(tmp_path, caplog):
    """loop.cold_start_labels: auto also picks by coverage past the first round while the labeled
    items are fewer than twice the classes the model knows (CLINC150's 200 seed labels over 150
    intents; here 10 digits seed labels and batches of 2), then the strategy takes over for good."""
    import re

    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'k.db'}", data={"builtin": "digits", "seed_size": 10},
                                         loop={"batch_size": 2}, stop={"max_labels": 40}))
    with caplog.at_level("INFO", logger="clicloop"):
        Loop(cfg).run()
    rounds = {int(m.group(1)): m.group(2) for m in map(re.compile(r"round (\d+): cold start \((.*?)\); selecting").match,
                                                      caplog.messages) if m}
    later = {r: why for r, why in rounds.items() if r > 0}
    assert later and sorted(rounds) == list(range(len(rounds))), rounds  # past round 0, and without a gap
    for r, why in later.items():
        n, k = map(int, re.match(r"(\d+) labeled, fewer than two for each of (\d+) classes", why).groups())
        assert n == 10 + 2 * r and n < 2 * k, (r, why)
    assert 10 + 2 * len(rounds) < 40  # the strategy took over before the budget ran out


def test_continuous_mode_covers_with_its_first_wave_only(tmp_path, caplog):
    """In continuous mode ``auto`` covers with the first version's wave alone: covering in later
    versions too cost labels on CLINC150 (docs/benchmarks/log.md, 2026-12-05)."""
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'c.db'}", data={"builtin": "digits", "seed_size": 10},
                                         loop={"mode": "continuous", "lookahead": 2, "refit_every": 2},
                                         backend={"name": "event-crowd", "params": {"n_workers": 2}},
                                         stop={"max_labels": 24}))
    with caplog.at_level("INFO", logger="clicloop"):
        Loop(cfg).run()
    cold = [m for m in caplog.messages if "cold start" in m]
    assert len(cold) == 1 and cold[0].startswith("round 0: cold start (the first round"), cold


@pytest.mark.parametrize("setting", [0, 20])
def test_a_count_keeps_its_meaning_and_0_lets_the_strategy_pick_the_first_round(tmp_path, caplog, setting):
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'z.db'}", loop={"cold_start_labels": setting},
                                         stop={"max_labels": 40}))
    with caplog.at_level("INFO", logger="clicloop"):
        Loop(cfg).run()
    assert not [m for m in caplog.messages if "cold start" in m]  # 20 seed labels: never fewer than 20


def test_cold_start_reason_says_when_and_why():
    from clicloop.orchestrator.loop_setup import cold_start_reason

    assert cold_start_reason("auto", 0, 20, True, True).startswith("the first round")
    assert cold_start_reason("auto", 1, 30, True, True) is None
    assert cold_start_reason("auto", 1, 30, True, True, n_classes=15) is None  # two labels a class: the strategy's turn
    assert cold_start_reason("auto", 4, 229, True, True, n_classes=115) == \
        "229 labeled, fewer than two for each of 115 classes (loop.cold_start_labels: auto)"
    assert cold_start_reason("auto", 4, 229, True, False, n_classes=115) is None
    assert cold_start_reason("auto", 0, 20, True, False) is None  # a text pool keeps its strategy
    assert cold_start_reason("auto", 3, 0, False, False) == "no model yet"
    assert cold_start_reason(40, 2, 39, True, True) == "39 < loop.cold_start_labels labeled"
    assert cold_start_reason(40, 0, 40, True, True) is None and cold_start_reason(0, 0, 0, True, True) is None


def test_seconds_model_learns_a_line_and_falls_back_to_the_prior():
    f = np.array([10.0, 20, 30, 40, 50])
    m = SecondsModel(min_observations=3).fit(f, 2 + 0.5 * f)
    np.testing.assert_allclose(m.predict([100.0]), [52.0])
    assert SecondsModel(prior_seconds=30).fit(f[:2], f[:2]).predict([1000.0])[0] == 30
    assert list(item_feature(np.array(["ab", "abcd"], dtype=object), "length")) == [2.0, 4.0]


def test_cost_aware_prefers_the_cheaper_of_two_equally_uncertain_items():
    X = np.array([[5.0, 1.0], [5.0, 9.0], [9.9, 1.0], [0.1, 1.0], [5.0, 1.0]], dtype=np.float32)
    ids = np.array(["a", "b", "c", "d", "e"])
    seconds = {"c": 12.0, "d": 12.0, "e": 12.0}  # items with feature 1 take 12 s; no slope known
    seconds.update({"x": 99.0})  # an item not in the pool is ignored
    ctx = SelectContext(labeled=np.array([2, 3, 4]), seconds=lambda: {**seconds, "b": 100.0})
    strategy = CostAware(feature=1, min_observations=2)
    chosen = select(strategy, TwoBlobModel(), X, np.array([0, 1]), 1, np.random.default_rng(0), ids=ids, context=ctx)
    assert list(chosen) == [0]
    with pytest.raises(StrategyError):
        select(strategy, None, X, np.array([0, 1]), 1, np.random.default_rng(0), ids=ids, context=ctx)


def test_cost_aware_runs_in_a_loop_and_reads_seconds_from_the_ledger(tmp_path):
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.strategies.cost import ledger_seconds

    url = f"sqlite:///{tmp_path / 'cost.db'}"
    cfg = config_from_dict(digits_config(url, strategy={"name": "cost-aware", "params": {"min_observations": 3}},
                                         stop={"max_labels": 40}))
    results = Loop(cfg).run()
    assert results[-1].n_labeled >= 40
    with Ledger(url) as ledger:
        seconds = ledger_seconds(ledger, "t")
        labeled = ledger.labels("t")
    assert seconds and set(seconds) <= set(labeled)  # timed answers are for items that got a label
    assert all(s > 0 for s in seconds.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_pairwise_squared_distances_equal_the_formula_written_out(dtype):
    """pairwise_sq works in place in the product's array; its values are those of the textbook
    expression bit for bit (so the covers' picks do not move), never negative, float for ints."""
    from clicloop.strategies.diversity import pairwise_sq

    rng = np.random.default_rng(0)
    A, B = (rng.normal(size=(33, 16)) * 10).astype(dtype), (rng.normal(size=(9, 16)) * 10).astype(dtype)
    for X, Y in ((A, B), (A, A)):
        expected = np.maximum(np.einsum("ij,ij->i", X, X)[:, None] - 2.0 * (X @ Y.T) + np.einsum("ij,ij->i", Y, Y)[None, :], 0.0)
        got = pairwise_sq(X, Y)
        assert got.dtype == expected.dtype and np.array_equal(got, expected) and (got >= 0).all()
