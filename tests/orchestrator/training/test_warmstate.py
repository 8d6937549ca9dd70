import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from clicloop.orchestrator.training.semisup import PseudoLabeler, fit_with_pseudo_labels
from clicloop.orchestrator.training.warmstate import Generations, QueryFits, labels_key


def pool(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (3, 5))
    truth = rng.integers(0, 3, 300)
    return centres[truth] + rng.normal(0, 1.2, (300, 5)), np.array(["a", "b", "c"])[truth]


def rounds(labeler: PseudoLabeler, X: np.ndarray, truth: np.ndarray, sizes: list[int]) -> list[tuple]:
    out = []
    for size in sizes:
        idx = np.arange(0, 3 * size, 3)
        trained, _ = fit_with_pseudo_labels(LogisticRegression(max_iter=500), labeler, X, idx, truth[idx], {})
        out.append((labeler.spread_.copy(), trained.coef_.copy()))
    return out


def test_a_resumed_loop_redoing_a_round_computes_what_the_uninterrupted_one_did(monkeypatch, tmp_path):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path))
    X, truth = pool()
    clean = rounds(PseudoLabeler(share=1.0, agree=True, state="clean"), X, truth, [20, 25, 30])
    killed = PseudoLabeler(share=1.0, agree=True, state="killed")
    rounds(killed, X, truth, [20, 25])  # then killed after round 2's fit: the resumed process redoes round 2
    resumed = rounds(PseudoLabeler(share=1.0, agree=True, state="killed"), X, truth, [25, 30])
    for (F, coef), (F2, coef2) in zip(clean[1:], resumed):
        np.testing.assert_array_equal(F, F2)
        np.testing.assert_array_equal(coef, coef2)


def test_labels_seen_last_start_from_the_generation_before_and_new_labels_from_the_newest():
    gens = Generations()
    F = np.zeros((2, 1), dtype=np.float32)
    one, two = labels_key(np.array([0]), np.array(["a"])), labels_key(np.array([0, 1]), np.array(["a", "a"]))
    assert gens.base(one) is None
    gens.record(one, F, np.array(["a"]), np.array([0]), np.array([0]))
    assert gens.base(one) is None and gens.base(two)["key"] == one
    gens.record(two, F, np.array(["a"]), np.array([0, 1]), np.array([0, 0]))
    assert gens.base(two)["key"] == one
    assert len(gens.gens_) == 2


def test_a_generation_is_kept_as_its_F_in_a_plain_npy_and_an_older_npz_holding_F_still_loads(tmp_path):
    import json

    F = np.arange(6, dtype=np.float32).reshape(3, 2)
    gens = Generations(tmp_path / "new")
    gens.record("k1", F, np.array(["a", "b"]), np.array([0]), np.array([1]))
    assert (tmp_path / "new" / "k1.F.npy").exists()
    with np.load(tmp_path / "new" / "k1.npz") as z:
        assert "F" not in z.files
    np.testing.assert_array_equal(Generations(tmp_path / "new").base("k2")["F"], F)
    old = tmp_path / "old"  # as an earlier version wrote it: F inside the npz
    old.mkdir()
    np.savez(old / "k1.npz", F=F, classes=np.array(["a", "b"]), rows=np.array([0]), codes=np.array([1]))
    (old / "chain.json").write_text(json.dumps(["k1"]))
    loaded = Generations(old).base("k2")
    np.testing.assert_array_equal(loaded["F"], F)
    assert loaded["classes"].tolist() == ["a", "b"]


def query_rounds(fits: QueryFits, X: np.ndarray, truth: np.ndarray, sizes: list[int]) -> list[tuple[np.ndarray, int]]:
    """Each round's query fit as the loop makes it: from :meth:`QueryFits.start`, then recorded."""
    out = []
    for size in sizes:
        idx = np.arange(0, 3 * size, 3)
        query, _ = fits.around(LogisticRegression(max_iter=500, tol=1e-3), idx, truth[idx], lambda m: (m.fit(X[idx], truth[idx]), None))
        out.append((query.coef_.copy(), int(query.n_iter_[0])))
    return out


def test_each_query_fit_starts_from_the_last_rounds_and_needs_fewer_iterations():
    X, truth = pool(1)
    warm = query_rounds(QueryFits(), X, truth, [30, 31, 32, 33])
    cold = [query_rounds(QueryFits(), X, truth, [size])[0] for size in [30, 31, 32, 33]]
    assert warm[0][1] == cold[0][1]  # nothing to start from in the first round
    assert sum(n for _, n in warm[1:]) < sum(n for _, n in cold[1:])
    for (coef, _), (coef2, _) in zip(warm, cold):
        np.testing.assert_allclose(coef, coef2, atol=0.05)  # the same optimum, to the solver's tolerance


def test_a_resumed_loop_redoing_a_round_starts_its_query_fit_where_the_uninterrupted_one_did(tmp_path):
    X, truth = pool(2)
    clean = query_rounds(QueryFits(tmp_path / "clean"), X, truth, [30, 31, 32])
    query_rounds(QueryFits(tmp_path / "killed"), X, truth, [30, 31])  # killed after round 2's fit was recorded
    resumed = query_rounds(QueryFits(tmp_path / "killed"), X, truth, [31, 32])  # a new process redoes round 2
    for (coef, n), (coef2, n2) in zip(clean[1:], resumed):
        np.testing.assert_array_equal(coef, coef2)
        assert n == n2
    forgetful = query_rounds(QueryFits(None), X, truth, [31, 32])  # what a resume without the saved fits would do
    assert not np.array_equal(forgetful[0][0], clean[1][0])


def test_a_fit_on_other_classes_or_features_starts_cold_and_the_recorded_fit_refits_as_configured(tmp_path):
    X, truth = pool(3)
    fits = QueryFits(tmp_path / "f")
    idx = np.arange(0, 60, 3)
    first, _ = fits.around(LogisticRegression(), idx, truth[idx], lambda m: (m.fit(X[idx], truth[idx]), None))
    assert first.get_params()["warm_start"] is False
    two = np.flatnonzero(truth != "c")[:20]  # two classes of three: not the base's
    assert fits.start(LogisticRegression(), "other", truth[two]).get_params()["warm_start"] is False
    started = fits.start(LogisticRegression(), "other", truth[idx])
    assert started.get_params()["warm_start"] is True and started is not first
    wider = np.hstack([X, X])  # a vectorizer's vocabulary grew: the base's coefficients do not fit, so it fits cold
    fitted, _ = fits.around(LogisticRegression(), idx, truth[idx], lambda m: (m.fit(wider[idx], truth[idx]), None))
    assert fitted.coef_.shape[1] == 10


def test_an_ensemble_never_warm_starts_so_every_round_fits_new_members():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from clicloop.orchestrator.training.warmstate import warm_from, warm_keys

    X, truth = pool(4)
    fits = QueryFits()
    forest = lambda: RandomForestClassifier(n_estimators=5, random_state=0)  # noqa: E731
    rows = [np.arange(0, 60, 3), np.arange(0, 120, 3)]
    for idx in rows:
        fitted, _ = fits.around(forest(), idx, truth[idx], lambda m: (m.fit(X[idx], truth[idx]), None))
    cold = forest().fit(X[rows[1]], truth[rows[1]])
    np.testing.assert_array_equal(fitted.predict_proba(X), cold.predict_proba(X))  # fitted on the new labels, not kept
    assert warm_keys(make_pipeline(StandardScaler(), forest())) == []
    assert warm_keys(make_pipeline(StandardScaler(), LogisticRegression())) == ["logisticregression__warm_start"]
    assert warm_from(cold, forest(), truth[rows[1]]) is None


def test_kept_fits_that_no_longer_load_cost_a_cold_start_not_the_loop(tmp_path, caplog):
    import json

    folder = tmp_path / "fits"
    folder.mkdir()
    (folder / "chain.json").write_text(json.dumps(["k1", "k2"]))
    (folder / "k1.joblib").write_bytes(b"cno_such_module_of_an_old_version\nThing\n.")  # pickled by a library since gone
    (folder / "k2.joblib").write_bytes(b"not a pickle")
    model = LogisticRegression()
    assert QueryFits(folder).start(model, "k3", np.array(["a", "b"])) is model
    assert "ignoring the saved query fits" in caplog.text


def test_a_pseudo_label_generation_that_no_longer_loads_is_recomputed(tmp_path, caplog):
    gens = Generations(tmp_path / "g")
    gens.record("k1", np.zeros((3, 2), dtype=np.float32), np.array(["a", "b"]), np.array([0]), np.array([1]))
    (tmp_path / "g" / "k1.joblib").write_bytes(b"cno_such_module_of_an_old_version\nThing\n.")
    assert Generations(tmp_path / "g").base("k2") is None
    assert "ignoring the saved state" in caplog.text


@pytest.mark.parametrize(("model", "fit_tol", "expected"), [
    ("pipeline", "auto", {"logisticregression__tol": 1e-5}),
    ("pipeline", 0.001, {"logisticregression__tol": 0.001}),
    ("pipeline", None, {}),
    ("tight", "auto", {"tol": 1e-6}),  # auto never loosens a tolerance the user chose
    ("sgd", "auto", {}),  # measured on logistic regression only: other models keep their own
    ("sgd", 0.01, {"tol": 0.01}),
    ("forest", "auto", {}),  # no tol at all
])
def test_fit_tolerances(model, fit_tol, expected):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from clicloop.orchestrator.training.warmstate import fit_tolerances

    models = {"pipeline": make_pipeline(StandardScaler(), LogisticRegression()), "tight": LogisticRegression(tol=1e-6),
              "sgd": SGDClassifier(), "forest": RandomForestClassifier()}
    assert fit_tolerances(models[model], fit_tol) == expected


class _NamedC:
    """A model whose C is not a number (a model is anything with fit / predict_proba / classes_)."""

    def __init__(self, C="balanced"):
        self.C = C

    def get_params(self, deep=True):
        return {"C": self.C}


@pytest.mark.parametrize(("model", "fit_C", "expected"), [
    ("pipeline", "scaled", {"logisticregression__C": 0.5}),  # its own 2.0 x 100 human labels / 400 rows
    ("pipeline", 0.1, {"logisticregression__C": 0.1}),
    ("pipeline", None, {}),
    ("svc", "scaled", {"C": 0.25}),
    ("named", "scaled", {}),  # a C that is not a number is left as it is (it raised ValueError before)
    ("forest", "scaled", {}),  # no C at all
])
def test_fit_regularisation(model, fit_C, expected):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from clicloop.orchestrator.training.warmstate import fit_regularisation

    models = {"pipeline": make_pipeline(StandardScaler(), LogisticRegression(C=2.0)), "svc": SVC(C=1),
              "named": _NamedC(), "forest": RandomForestClassifier()}
    assert fit_regularisation(models[model], fit_C, 100, 400) == expected
