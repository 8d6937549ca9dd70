"""The pseudo-labeled fit's cost settings (``loop.pseudo_labels.fit_max_iter``, ``refit_change``)."""

import numpy as np

from clicloop import config_from_dict
from clicloop.orchestrator.training.semisup import PseudoLabeler, fit_with_pseudo_labels
from tests.conftest import digits_config
from tests.orchestrator.training.test_semisup import two_blobs


def scaled():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


def test_fit_max_iter_caps_only_a_warm_started_pseudo_labeled_fit():
    X, truth = two_blobs()
    labeler = PseudoLabeler(share=1.0, agree=True, cache=False, fit_max_iter=2)
    first, _ = fit_with_pseudo_labels(scaled(), labeler, X, np.array([0, 60]), truth[[0, 60]], {})
    assert first.get_params()["logisticregression__max_iter"] == 500  # nothing to start from: the model's own
    idx = np.array([0, 1, 60, 61])
    second, query = fit_with_pseudo_labels(scaled(), labeler, X, idx, truth[idx], {})
    assert second.get_params()["logisticregression__warm_start"]
    assert second.get_params()["logisticregression__max_iter"] == 2
    assert second[-1].n_iter_.max() <= 2
    assert query.get_params()["logisticregression__max_iter"] == 500  # the strategy's fit keeps the model's own


def test_refit_change_reuses_the_last_pseudo_labeled_fit_while_few_pseudo_labels_changed():
    X, truth = two_blobs()
    idx1, idx2 = np.array([0, 60]), np.array([0, 1, 60])  # one more label: one pseudo-label of 118 leaves
    reusing = PseudoLabeler(share=1.0, agree=True, cache=False, refit_change=0.05)
    first, _ = fit_with_pseudo_labels(scaled(), reusing, X, idx1, truth[idx1], {})
    again, query = fit_with_pseudo_labels(scaled(), reusing, X, idx2, truth[idx2], {})
    assert again is first and query is not first
    strict = PseudoLabeler(share=1.0, agree=True, cache=False, refit_change=0.0)
    first, _ = fit_with_pseudo_labels(scaled(), strict, X, idx1, truth[idx1], {})
    again, _ = fit_with_pseudo_labels(scaled(), strict, X, idx2, truth[idx2], {})
    assert again is not first


def test_the_fit_cost_settings_are_off_by_default_and_change_the_fingerprint_when_set():
    from clicloop.orchestrator.loop_setup import fingerprint

    base = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": {}}))
    assert base.loop.pseudo_labels.fit_max_iter is None and base.loop.pseudo_labels.refit_change is None
    for section in ({"fit_max_iter": 5}, {"refit_change": 0.02}):
        changed = config_from_dict(digits_config("sqlite://", loop={"pseudo_labels": section}))
        assert fingerprint(changed)[0] != fingerprint(base)[0]


def test_the_loop_hands_the_fit_cost_settings_to_its_pseudo_labeler(tmp_path):
    from clicloop import Loop

    section = {"fit_tol": 0.0003, "fit_max_iter": 7, "refit_change": 0.03}
    loop = Loop(config_from_dict(digits_config(f"sqlite:///{tmp_path / 'l.db'}", loop={"pseudo_labels": section})))
    loop._build()  # the parts only: no ledger, no backend
    assert (loop.pseudo_.fit_tol, loop.pseudo_.fit_max_iter, loop.pseudo_.refit_change) == (0.0003, 7, 0.03)


def test_refit_change_refits_when_a_class_appears():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c * 5, 0.3, (40, 2)) for c in range(3)])
    truth = np.repeat(np.array(["a", "b", "c"]), 40)
    labeler = PseudoLabeler(share=1.0, agree=True, cache=False, refit_change=0.99)
    first, _ = fit_with_pseudo_labels(scaled(), labeler, X, np.array([0, 40]), truth[[0, 40]], {})
    idx = np.array([0, 40, 80])  # class c's first label
    again, _ = fit_with_pseudo_labels(scaled(), labeler, X, idx, truth[idx], {})
    assert again is not first and list(again.classes_) == ["a", "b", "c"]
