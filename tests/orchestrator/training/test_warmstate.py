import numpy as np
from sklearn.linear_model import LogisticRegression

from clicloop.orchestrator.training.semisup import PseudoLabeler, fit_with_pseudo_labels
from clicloop.orchestrator.training.warmstate import Generations, labels_key


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
