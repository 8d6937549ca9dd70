import numpy as np
import pytest

from clicloop import Loop, config_from_dict
from clicloop.orchestrator.config import PseudoLabels
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.reporting.laborcard import labor_card, render_markdown
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.training.semisup import (PseudoLabeler, check_pseudo_labels, fit_with_pseudo_labels, resolve_pseudo_labels,
                                  with_pseudo_labels)
from tests.conftest import PURPOSE, digits_config


def two_blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 0.3, (n, 2)), rng.normal(5, 0.3, (n, 2))])
    return X, np.array(["a"] * n + ["b"] * n)


def test_spread_labels_follow_the_blobs_and_skip_the_labeled_rows():
    X, truth = two_blobs()
    labeled = np.array([0, 60])
    rows, labels = PseudoLabeler(share=0.5).pseudo_labels(X, labeled, truth[labeled])
    assert rows.size == round(0.5 * (len(X) - 2)) and not set(rows) & set(labeled)
    assert (labels == truth[rows]).all()


def test_pseudo_labels_are_deterministic_and_the_graph_is_built_once():
    X, truth = two_blobs()
    labeler = PseudoLabeler(share=0.3)
    first = labeler.pseudo_labels(X, np.array([1, 61]), np.array(["a", "b"]))
    graph = labeler.graph_
    second = labeler.pseudo_labels(X, np.array([1, 61]), np.array(["a", "b"]))
    assert labeler.graph_ is graph
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_training_set_gets_the_pseudo_rows_with_weight_one():
    X, truth = two_blobs(10)
    idx, y = np.array([0, 10]), np.array(["a", "b"])
    Xs, ys, kw = with_pseudo_labels(PseudoLabeler(share=1.0), X, idx, y, {"sample_weight": np.array([0.5, 0.9])})
    assert len(Xs) == len(X) and (ys[:2] == y).all()
    np.testing.assert_array_equal(kw["sample_weight"], [0.5, 0.9] + [1.0] * (len(X) - 2))


def test_text_pools_and_pools_over_max_pool_are_refused_with_the_field():
    with pytest.raises(ConfigError, match="text") as err:
        check_pseudo_labels(PseudoLabels(), "text", 10)
    assert err.value.field == "loop.pseudo_labels"
    with pytest.raises(ConfigError, match="max_pool") as err:
        check_pseudo_labels(PseudoLabels(max_pool=100), "numeric", 101)
    assert err.value.field == "loop.pseudo_labels.max_pool"
    check_pseudo_labels(None, "text", 10**9)  # off: nothing to check


def test_raw_text_pool_with_pseudo_labels_fails_when_the_loop_is_set_up(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text("id,text,label\na,hello there,greet\nb,bye now,leave\nc,hi,\n")
    cfg = config_from_dict({"loop": {"name": "t", "purpose": PURPOSE, "pseudo_labels": {}}, "model": {"name": "tfidf-logreg"},
                            "data": {"pool": {"path": str(path), "id": "id", "text": "text"}},
                            "stop": {"max_labels": 20}, "ledger": f"sqlite:///{tmp_path / 'w.db'}"})
    with pytest.raises(ConfigError, match="loop.pseudo_labels"):
        Loop(cfg).run()


def test_loop_with_pseudo_labels_trains_on_them_but_records_only_human_labels(tmp_path):
    runs = {}
    for name, extra in (("plain", {"pseudo_labels": None}), ("spread", {"pseudo_labels": {"share": 0.75, "agree": False}})):
        ledger = f"sqlite:///{tmp_path / name}.db"
        cfg = config_from_dict(digits_config(ledger, loop=extra, stop={"max_labels": 30}))
        runs[name] = (Loop(cfg).run(), Ledger(ledger).open().labels("t"))
    plain, spread = runs["plain"][0], runs["spread"][0]
    assert [r.n_labeled for r in spread] == [r.n_labeled for r in plain]  # same human labels bought
    # the ledger holds the 30 labels people gave, in both runs: no pseudo-label is ever recorded
    assert len(runs["spread"][1]) == len(runs["plain"][1]) == sum(r.answers for r in spread) == 30
    # on digits' first round (20 seed labels) the spread labels lift the model (measured in docs/benchmarks/log.md)
    assert spread[0].metric > plain[0].metric + 0.02, (spread[0].metric, plain[0].metric)


def test_labor_card_says_the_model_also_learned_from_pseudo_labels(tmp_path):
    cards = {}
    for name, extra in (("plain", {"pseudo_labels": None}), ("spread", {"pseudo_labels": {"share": 0.5, "agree": False}})):
        ledger = f"sqlite:///{tmp_path / name}.db"
        Loop(config_from_dict(digits_config(ledger, loop=extra, stop={"max_labels": 10}))).run()
        cards[name] = labor_card(Ledger(ledger).open(), "t-r1")
    assert cards["plain"]["pseudo_labels"] is None and "pseudo-labels" not in render_markdown(cards["plain"])
    assert cards["spread"]["pseudo_labels"]["share"] == 0.5
    assert "the surest 50% of the unlabeled pool, each round" in render_markdown(cards["spread"])
    from clicloop.orchestrator.dashboard.base import Context
    from clicloop.orchestrator.dashboard.source import Filters, ReadOnlyLedger
    from clicloop.orchestrator.dashboard.views_cards import version_card

    with ReadOnlyLedger(f"sqlite:///{tmp_path / 'spread'}.db") as led:  # the dashboard's card says it too
        ctx = Context(led.engine_, Filters())
        row = next(r for r in ctx.rounds if r["model_version"] == "t-r1")
        assert version_card(ctx, led, row)["pseudo_labels"] == cards["spread"]["pseudo_labels"]


class _SaysA:
    """A fitted model that predicts class "a" for every row."""

    classes_ = np.array(["a", "b"])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile([0.9, 0.1], (len(X), 1))


def test_agreeing_pseudo_labels_keep_only_rows_the_model_also_predicts():
    X, truth = two_blobs(10)
    idx, y = np.array([0, 10]), np.array(["a", "b"])
    labeler = PseudoLabeler(share=1.0, agree=True)
    Xs, ys, _ = with_pseudo_labels(labeler, X, idx, y, {}, _SaysA())
    # the spread labels are 9 x "a" and 9 x "b"; the model says "a" everywhere: only the a's stay
    assert len(Xs) == 2 + 9 and (ys[2:] == "a").all()
    with pytest.raises(ValueError, match="fitted on the human labels"):
        with_pseudo_labels(labeler, X, idx, y, {})


def test_default_loop_trains_on_agreeing_pseudo_labels_and_says_so_on_the_card(tmp_path):
    runs = {}
    for name, extra in (("plain", {"pseudo_labels": None}), ("agree", {})):  # the default: auto
        ledger = f"sqlite:///{tmp_path / name}.db"
        cfg = config_from_dict(digits_config(ledger, loop=extra, stop={"max_labels": 30}))
        runs[name] = (Loop(cfg).run(), Ledger(ledger).open())
    plain, agree = runs["plain"][0], runs["agree"][0]
    assert len(runs["agree"][1].labels("t")) == len(runs["plain"][1].labels("t")) == 30  # human labels only
    assert agree[0].metric > plain[0].metric + 0.02, (agree[0].metric, plain[0].metric)
    card = labor_card(runs["agree"][1], "t-r1")
    assert card["pseudo_labels"]["agree"] is True
    assert card["pseudo_labels"]["share"] == 1.0  # auto, resolved: the ledger records what ran
    assert ("every unlabeled item on which label spreading and the model's own prediction agreed, in every round but "
            "those whose fit on human labels alone had got at least 90% of the labels bought in the last 8 rounds right, "
            "and no fewer than with them (machine-made") in render_markdown(card)


def test_auto_is_off_for_text_and_over_the_memory_bound_and_the_default_settings_otherwise(monkeypatch, caplog):
    assert resolve_pseudo_labels("auto", "text", 10) is None
    monkeypatch.setattr("clicloop.orchestrator.training.semisup.memory_limit", lambda: 8 << 30)
    caplog.set_level("INFO", logger="clicloop.orchestrator.training.semisup")
    assert resolve_pseudo_labels("auto", "numeric", 1_000_000, 384, 100) == PseudoLabels(share=1.0, agree=True)
    assert "auto is on" in caplog.text and "approximate" in caplog.text and "limit of 8.6 GB" in caplog.text
    caplog.clear()
    assert resolve_pseudo_labels("auto", "numeric", 2_000_000, 384, 100) is None
    assert "auto is off" in caplog.text and "over the limit of 8.6 GB" in caplog.text
    assert resolve_pseudo_labels("auto", "numeric", 100) == PseudoLabels(share=1.0, agree=True)
    assert resolve_pseudo_labels(None, "text", 10) is None
    with pytest.raises(ConfigError, match="text"):  # asked for explicitly: refused, not silently dropped
        resolve_pseudo_labels(PseudoLabels(), "text", 10)


@pytest.mark.parametrize("model, spread", [("tfidf-logreg", False), ("auto", True)])
def test_a_text_pool_runs_with_the_default_pseudo_labels_only_when_embedded(tmp_path, model, spread):
    """auto on a text pool embeds it (sentence-embedding), and pseudo-labels: auto come on; on raw
    text (TF-IDF) they stay off."""
    path = tmp_path / "pool.csv"
    path.write_text("id,text,label,truth\n" + "".join(f"{i},{w} {i},{w},{w}\n" for i, w in enumerate(["hi", "bye"] * 6))
                    + "".join(f"u{i},{w} there {i},,{w}\n" for i, w in enumerate(["hi", "bye"] * 10)))
    ledger = f"sqlite:///{tmp_path / 'w.db'}"
    cfg = config_from_dict({"loop": {"name": "t", "purpose": PURPOSE, "batch_size": 2}, "model": {"name": model},
                            "data": {"pool": {"path": str(path), "id": "id", "text": "text", "label": "label", "truth": "truth"}},
                            "stop": {"max_labels": 16}, "ledger": ledger})
    Loop(cfg).run()
    recorded = labor_card(Ledger(ledger).open(), "t-r1")["pseudo_labels"]
    assert (recorded is not None and recorded["agree"]) if spread else recorded is None


class _Rows:
    """A model that remembers how many rows it was last fitted on."""

    classes_ = np.array(["a", "b"])

    def fit(self, X: np.ndarray, y: np.ndarray) -> "_Rows":
        self.rows_ = len(X)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile([0.9, 0.1], (len(X), 1))


def test_the_strategy_queries_with_the_human_label_fit_and_the_trained_model_is_a_copy():
    X, _ = two_blobs(10)
    idx, y = np.array([0, 10]), np.array(["a", "b"])
    model = _Rows()
    trained, query = fit_with_pseudo_labels(model, PseudoLabeler(share=1.0, agree=True), X, idx, y, {})
    assert query is model and query.rows_ == 2  # human labels only
    assert trained is not model and trained.rows_ == 2 + 9  # plus the 9 agreeing "a" rows
    trained, query = fit_with_pseudo_labels(_Rows(), PseudoLabeler(share=0.5, agree=False), X, idx, y, {})
    assert trained is query and trained.rows_ == 2 + 9  # no human-label fit without agree: one model
    trained, query = fit_with_pseudo_labels(_Rows(), None, X, idx, y, {})
    assert trained is query and trained.rows_ == 2


def test_the_loop_selects_with_the_human_label_fit_and_evaluates_the_pseudo_labeled_one(tmp_path):
    from clicloop.strategies.scores import Margin

    class Spy(Margin):
        def score(self, model, X, rng):
            seen.append(model.fitted_rows_)  # now: the loop refits the same object next round
            return super().score(model, X, rng)

    from sklearn.linear_model import LogisticRegression

    seen: list = []
    fits: list = []

    class CountingLR(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            fits.append(len(X))
            self.fitted_rows_ = len(X)
            return super().fit(X, y, sample_weight=sample_weight)

    ledger = f"sqlite:///{tmp_path / 'q.db'}"
    cfg = config_from_dict(digits_config(ledger, strategy={"name": "margin"}, stop={"max_rounds": 1},
                                         loop={"cold_start_labels": 0}))  # round 0 by the strategy, not by coverage
    Loop(cfg, model=CountingLR(max_iter=500), strategy=Spy()).run()
    human = cfg.data.seed_size  # round 0 learns from the seed labels
    assert fits[:2] == [human, fits[1]] and fits[1] > human  # round 0: the human-label fit, then the pseudo-labeled copy
    assert seen and set(seen) == {human}  # every score the strategy computed: the human-label fit


class _Told(PseudoLabeler):
    """Pseudo-labels from a given list (right or wrong), for every unlabeled row."""

    def __init__(self, told: np.ndarray, **kwargs):
        super().__init__(share=1.0, **kwargs)
        self.told = told

    def pseudo_labels(self, X, labeled, labels, remember=True):
        rows = np.setdiff1d(np.arange(len(X)), labeled)
        return rows, self.told[rows]


def test_the_held_out_check_keeps_pseudo_labels_that_help_and_drops_those_that_hurt():
    from sklearn.linear_model import LogisticRegression

    class Counting(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            self.rows_ = len(X)
            return super().fit(X, y, sample_weight=sample_weight)

    X, truth = two_blobs(40, seed=1)
    idx = np.array([0, 1, 2, 3, 4, 40, 41, 42, 43, 44])  # a few labels of each blob
    flipped = np.where(truth == "a", "b", "a")
    right, _ = fit_with_pseudo_labels(Counting(), _Told(truth, check_folds=3), X, idx, truth[idx], {})
    wrong, _ = fit_with_pseudo_labels(Counting(), _Told(flipped, check_folds=3), X, idx, truth[idx], {})
    unchecked, _ = fit_with_pseudo_labels(Counting(), _Told(flipped), X, idx, truth[idx], {})
    assert right.rows_ == len(X)  # no worse on held-out labels: trained on every pseudo-label
    assert wrong.rows_ == idx.size and (wrong.predict(X) == truth).all()  # worse: human labels only
    assert unchecked.rows_ == len(X) and (unchecked.predict(X) != truth).mean() > 0.4  # without the check: used


def test_held_out_rows_never_get_a_pseudo_label():
    X, truth = two_blobs(10)
    idx, y = np.array([0, 10]), np.array(["a", "b"])
    held = np.array([1, 2, 11])
    Xs, ys, _ = with_pseudo_labels(_Told(truth), X, idx, y, {}, exclude=held)
    assert len(Xs) == len(X) - len(held)
    assert not any((X[h] == Xs).all(axis=1).any() for h in held)


def test_one_check_fold_is_refused_naming_the_field():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"loop": {"name": "t", "purpose": PURPOSE, "pseudo_labels": {"check_folds": 1}},
                          "data": {"builtin": "digits"}, "stop": {"max_labels": 20}})
    assert err.value.field == "loop.pseudo_labels.PseudoLabels.check_folds" and "at least 2" in str(err.value)


def test_a_loop_begun_before_the_graph_setting_keeps_its_fingerprint():
    from clicloop.orchestrator.loop_setup import fingerprint

    cfg = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {}}))
    # the hash clicloop gave this config before loop.pseudo_labels.graph existed and max_pool had a default of 100,000
    assert fingerprint(cfg)[0] == "21b4a871ec8648936139247727410d01369a073b913173b11f55094520e16a72"
    other = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {"graph": "exact"}}))
    assert fingerprint(other)[0] != fingerprint(cfg)[0]


def test_without_faiss_auto_is_off_above_the_exact_graph_and_an_explicit_section_is_refused(monkeypatch, caplog):
    monkeypatch.setattr("clicloop.orchestrator.training.semisup.approximate_available", lambda: False)
    caplog.set_level("INFO", logger="clicloop.orchestrator.training.semisup")
    assert resolve_pseudo_labels("auto", "numeric", 50_000, 64, 10) is None
    assert "clicloop[ann]" in caplog.text
    assert resolve_pseudo_labels("auto", "numeric", 5_000, 64, 10) == PseudoLabels(share=1.0, agree=True)  # exact graph
    with pytest.raises(ConfigError, match=r"clicloop\[ann\]") as err:
        check_pseudo_labels(PseudoLabels(), "numeric", 50_000)
    assert err.value.field == "loop.pseudo_labels.graph"
    check_pseudo_labels(PseudoLabels(graph="exact"), "numeric", 50_000)


def test_max_rows_keeps_the_surest_pseudo_labels_only():
    from clicloop.orchestrator.training.spreading import normalise

    X, truth = two_blobs()
    labeled = np.array([0, 60])
    every = PseudoLabeler(share=1.0, cache=False).pseudo_labels(X, labeled, truth[labeled])
    capped = PseudoLabeler(share=1.0, cache=False, max_rows=7)
    rows, labels = capped.pseudo_labels(X, labeled, truth[labeled])
    assert rows.size == 7 and set(rows) <= set(every[0])
    confidence = normalise(capped.spread_[every[0]]).max(axis=1)
    assert confidence[np.isin(every[0], rows)].min() >= confidence[~np.isin(every[0], rows)].max()


def test_fit_tol_loosens_only_the_pseudo_labeled_fit_and_changes_the_fingerprint():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from clicloop.orchestrator.loop_setup import fingerprint

    X, truth = two_blobs()
    idx = np.array([0, 1, 60, 61])
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-4))
    trained, query = fit_with_pseudo_labels(model, PseudoLabeler(share=1.0, agree=True, cache=False, fit_tol=0.05), X,
                                            idx, truth[idx], {})
    assert trained.get_params()["logisticregression__tol"] == 0.05
    assert query.get_params()["logisticregression__tol"] == 1e-4  # the strategy's fit keeps the model's own
    plain, _ = fit_with_pseudo_labels(make_pipeline(StandardScaler(), LogisticRegression(tol=1e-4)),
                                      PseudoLabeler(share=1.0, agree=True, cache=False), X, idx, truth[idx], {})
    assert plain.get_params()["logisticregression__tol"] == 1e-4
    base = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {}}))
    loose = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {"fit_tol": 0.01}}))
    assert fingerprint(loose)[0] != fingerprint(base)[0]


def test_the_default_fit_tol_converges_a_logistic_regression_and_keeps_older_loops_hash():
    """fit_tol: auto (the default since 2026-12-07) tightens the pseudo-labeled fit of a logistic
    regression to 1e-5; a loop begun when the default was the model's own (None) resumes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from clicloop.orchestrator.loop_setup import fingerprint

    assert PseudoLabels().fit_tol == "auto"
    X, truth = two_blobs()
    idx = np.array([0, 1, 60, 61])
    model = make_pipeline(StandardScaler(), LogisticRegression())
    trained, query = fit_with_pseudo_labels(model, PseudoLabeler(share=1.0, agree=True, cache=False, fit_tol="auto"), X,
                                            idx, truth[idx], {})
    assert trained.get_params()["logisticregression__tol"] == 1e-5
    assert query.get_params()["logisticregression__tol"] == 1e-4  # the strategy's fit keeps the model's own
    base = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {}}))
    older = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {"fit_tol": None}}))
    assert fingerprint(base)[0] == fingerprint(older)[0]


def test_the_loop_hands_fit_tol_to_its_pseudo_labeler(tmp_path):
    from clicloop import Loop

    config = digits_config(f"sqlite:///{tmp_path / 'l.db'}", loop={"pseudo_labels": {"fit_tol": 0.0003}})
    loop = Loop(config_from_dict(config))
    loop._build()  # the parts only: no ledger, no backend
    assert loop.pseudo_.fit_tol == 0.0003


def test_fit_C_regularises_only_the_pseudo_labeled_fit_scaled_by_its_share_of_human_labels():
    """fit_C sets the pseudo-labeled fit's C (the strategy's fit keeps the model's own); scaled:
    the model's own C times human labels / rows trained on. Scaled by default, and it keeps the
    hash of an older loop (the model's own C then: no pick changes, only the fit evaluated)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from clicloop.orchestrator.loop_setup import fingerprint

    X, truth = two_blobs()
    idx = np.array([0, 1, 60, 61])
    fixed, query = fit_with_pseudo_labels(make_pipeline(StandardScaler(), LogisticRegression(C=2.0)),
                                          PseudoLabeler(share=1.0, agree=True, cache=False, fit_C=0.1), X, idx,
                                          truth[idx], {})
    assert fixed.get_params()["logisticregression__C"] == 0.1
    assert query.get_params()["logisticregression__C"] == 2.0
    labeler = PseudoLabeler(share=1.0, agree=True, cache=False, fit_C="scaled")
    scaled, _ = fit_with_pseudo_labels(make_pipeline(StandardScaler(), LogisticRegression(C=2.0)), labeler, X, idx,
                                       truth[idx], {})
    rows = scaled.named_steps["standardscaler"].n_samples_seen_  # the rows the pseudo-labeled fit trained on
    assert rows > idx.size  # pseudo-labels joined the fit
    assert scaled.get_params()["logisticregression__C"] == pytest.approx(2.0 * idx.size / rows)
    assert PseudoLabels().fit_C == "scaled"
    base = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {}}))
    older = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {"fit_C": None}}))
    assert fingerprint(base)[0] == fingerprint(older)[0]
    assert fingerprint(config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {"fit_C": 0.1}})))[0] \
        != fingerprint(base)[0]
    with pytest.raises(ConfigError, match="fit_C"):
        config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {"fit_C": 0}}))


def test_the_loop_hands_fit_C_to_its_pseudo_labeler(tmp_path):
    from clicloop import Loop

    config = digits_config(f"sqlite:///{tmp_path / 'l.db'}", loop={"pseudo_labels": {"fit_C": "scaled"}})
    loop = Loop(config_from_dict(config))
    loop._build()
    assert loop.pseudo_.fit_C == "scaled"


def test_many_classes_and_few_labels_fit_without_a_regression_warning():
    """An active-learning loop starts with many classes and few labels (150 intents, 200 seed
    labels): scikit-learn's 'could represent a regression problem' warning is not shown for it.
    (Before 2026-12-05 it came every round until the labels doubled the classes.)"""
    import warnings

    from clicloop.orchestrator.training.logistic import scaled_logreg

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 8))
    y = np.array([f"c{i % 80}" for i in range(120)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trained, query = fit_with_pseudo_labels(scaled_logreg(), None, X, np.arange(120), y, {})
    assert trained is query and len(trained.classes_) == 80
