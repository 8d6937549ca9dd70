import warnings

import numpy as np
from sklearn.semi_supervised import LabelSpreading

from clicloop.orchestrator.training.graph import neighbour_graph
from clicloop.orchestrator.training.semisup import PseudoLabeler
from clicloop.orchestrator.training.spreading import columns_for, normalise, normalised_graph, spread


def pool(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (4, 6))
    truth = rng.integers(0, 4, 400)
    return centres[truth] + rng.normal(0, 1.5, (400, 6)), truth


def test_sparse_spreading_gives_scikit_learns_labels_on_the_same_graph():
    X, truth = pool()
    W = neighbour_graph(X, 10, "exact", cache=False)
    labeled = np.random.default_rng(1).choice(len(X), 20, replace=False)
    partial = np.full(len(X), -1)
    partial[labeled] = truth[labeled]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = LabelSpreading(kernel=lambda a, b: W, alpha=0.2, max_iter=100).fit(np.zeros((len(X), 1)), partial)
    classes, codes = np.unique(truth[labeled], return_inverse=True)
    F, iterations = spread(normalised_graph(W), labeled, codes, classes.size, 0.2)
    assert iterations == reference.n_iter_
    np.testing.assert_array_equal(classes[F.argmax(axis=1)], reference.transduction_)
    np.testing.assert_allclose(normalise(F), reference.label_distributions_, atol=1e-5)


def test_a_warm_start_reaches_the_same_labels_in_no_more_iterations():
    X, truth = pool(2)
    S = normalised_graph(neighbour_graph(X, 10, "exact", cache=False))
    rows = np.arange(0, 400, 10)
    classes, codes = np.unique(truth[rows], return_inverse=True)
    before, _ = spread(S, rows[:-2], codes[:-2], classes.size, 0.2)
    cold, cold_iter = spread(S, rows, codes, classes.size, 0.2)
    warm, warm_iter = spread(S, rows, codes, classes.size, 0.2, start=before)
    assert warm_iter <= cold_iter
    np.testing.assert_array_equal(warm.argmax(axis=1), cold.argmax(axis=1))
    np.testing.assert_allclose(warm, cold, atol=1e-3)


def test_the_previous_solution_is_reordered_for_new_classes():
    F = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    np.testing.assert_array_equal(columns_for(F, np.array(["b", "d"]), np.array(["a", "b", "d"])),
                                  [[0, 1, 2], [0, 3, 4]])
    assert columns_for(None, None, np.array(["a"])) is None


def test_the_labeler_warm_starts_from_its_last_solution_with_the_same_pseudo_labels():
    X, truth = pool(3)
    rows = np.arange(0, 400, 8)
    warm = PseudoLabeler(share=1.0, cache=False)
    warm.pseudo_labels(X, rows[:-5], truth[rows[:-5]])
    got = warm.pseudo_labels(X, rows, truth[rows])
    cold = PseudoLabeler(share=1.0, cache=False).pseudo_labels(X, rows, truth[rows])
    np.testing.assert_array_equal(got[0], cold[0])
    np.testing.assert_array_equal(got[1], cold[1])


def test_moving_the_last_solution_by_the_changed_labels_matches_spreading_afresh():
    from clicloop.orchestrator.training.spreading import label_matrix, respread

    X, truth = pool(4)
    S = normalised_graph(neighbour_graph(X, 10, "exact", cache=False))
    rows = np.arange(0, 400, 7)
    codes = truth[rows].copy()
    before, _ = spread(S, rows[:-6], codes[:-6], 4, 0.2)
    codes[3] = (codes[3] + 1) % 4  # a relabel, and six new labels
    change = label_matrix(rows, codes, 400, 4) - label_matrix(rows[:-6], truth[rows[:-6]], 400, 4)
    moved = before.copy()
    iterations = respread(S, moved, change, 0.2)
    afresh, _ = spread(S, rows, codes, 4, 0.2)
    assert iterations >= 1
    np.testing.assert_allclose(moved, afresh, atol=2e-4)
    np.testing.assert_array_equal(moved.argmax(axis=1), afresh.argmax(axis=1))


def test_top_share_is_the_normalised_rows_largest_share_chunk_by_chunk():
    from clicloop.orchestrator.training.spreading import top_share

    F = np.random.default_rng(5).random((1000, 7)).astype(np.float32)
    F[3] = 0.0  # a row with no mass: share 0
    np.testing.assert_array_equal(top_share(F, chunk=64), normalise(F).max(axis=1))
    assert top_share(F)[3] == 0.0


def test_the_previous_solution_is_copied_in_the_new_column_order_when_no_class_is_new():
    F = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    moved = columns_for(F, np.array(["b", "a"]), np.array(["a", "b"]))
    np.testing.assert_array_equal(moved, [[2, 1], [4, 3]])
    moved[0, 0] = 9.0  # respread moves it in place: the saved solution must not change
    assert F[0, 1] == 2.0


def test_the_previous_solution_is_copied_when_the_classes_are_the_same():
    F = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    same = columns_for(F, np.array(["a", "b"]), np.array(["a", "b"]))
    np.testing.assert_array_equal(same, F)
    assert not np.shares_memory(same, F)


def test_top_share_matches_normalise_on_rows_with_negative_or_cancelling_mass():
    from clicloop.orchestrator.training.spreading import top_share

    F = np.random.default_rng(6).normal(0, 1, (500, 5)).astype(np.float32)  # respread can leave small negatives
    F[7] = [1.0, -1.0, 0.5, -0.5, 0.0]  # a total of 0: normalise leaves the row as it is
    F[8] = [-1.0, -2.0, -0.5, -3.0, -0.25]  # a negative total: the smallest entry has the largest share
    np.testing.assert_array_equal(top_share(F, chunk=64), normalise(F).max(axis=1))


def test_the_surest_rows_are_the_stable_argsorts_first_in_position_order_ties_included():
    from clicloop.orchestrator.training.spreading import surest

    rng = np.random.default_rng(7)
    confidence = rng.integers(0, 6, 300).astype(np.float32) / 5  # many ties at every threshold
    for keep in (0, 1, 37, 150, 299, 300, 400):
        expected = np.sort(np.argsort(-confidence, kind="stable")[:keep])
        np.testing.assert_array_equal(surest(confidence, keep), expected)
