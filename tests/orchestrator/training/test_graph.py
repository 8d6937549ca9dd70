import numpy as np
import pytest

from clicloop.orchestrator.training import graph as graph_mod
from clicloop.orchestrator.training.graph import graph_key, graph_params, neighbour_graph


def blobs(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 0.5, (n // 3, 8)) for c in (0, 4, 8)])


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each graph actually built (not loaded from the cache)."""
    built: list[str] = []
    for name in ("_exact", "_approximate"):
        real = getattr(graph_mod, name)
        monkeypatch.setattr(graph_mod, name, lambda *a, real=real, name=name: built.append(name) or real(*a))
    return built


def test_the_graph_is_built_once_per_pool_and_loaded_by_a_second_loop(monkeypatch, tmp_path):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path))
    built = counting(monkeypatch)
    X = blobs()
    first = neighbour_graph(X, 10, "approximate")
    second = neighbour_graph(X.copy(), 10, "approximate")  # same pool, another array: a second loop
    assert built == ["_approximate"]
    assert (first != second).nnz == 0
    assert len(list((tmp_path / "graphs").glob("*.npy"))) == 1


def test_other_data_or_parameters_get_another_key_and_graph(monkeypatch, tmp_path):
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path))
    built = counting(monkeypatch)
    X = blobs()
    neighbour_graph(X, 10, "approximate")
    changed = X.copy()
    changed[5, 3] += 1e-9
    neighbour_graph(changed, 10, "approximate")
    neighbour_graph(X, 5, "approximate")
    neighbour_graph(X, 10, "exact")
    assert built == ["_approximate", "_approximate", "_approximate", "_exact"]
    keys = {graph_key(X, graph_params(len(X), 10, "approximate")), graph_key(changed, graph_params(len(X), 10, "approximate")),
            graph_key(X, graph_params(len(X), 5, "approximate")), graph_key(X, graph_params(len(X), 10, "exact"))}
    assert len(keys) == 4


def test_the_approximate_graph_is_deterministic_and_close_to_the_exact_one(tmp_path):
    X = blobs(900)
    approx = neighbour_graph(X, 10, "approximate", cache=False)
    again = neighbour_graph(X, 10, "approximate", cache=False)
    exact = neighbour_graph(X, 10, "exact", cache=False)
    assert (approx != again).nnz == 0
    assert approx.shape == exact.shape == (900, 900) and (approx.getnnz(axis=1) == 10).all()
    np.testing.assert_array_equal(approx.diagonal(), 1.0)  # each row: its item, as kneighbors_graph(X, k) gives it
    assert approx.multiply(exact).sum() / exact.sum() > 0.9  # recall of the exact neighbours


def test_auto_is_exact_up_to_the_limit_and_approximate_above():
    assert graph_params(graph_mod.EXACT_MAX, 10)["method"] == "exact"
    assert graph_params(graph_mod.EXACT_MAX + 1, 10)["method"] == "faiss-ivf"
    assert graph_params(5, 10)["k"] == 4  # never more neighbours than the pool has


def test_found_rows_put_the_item_first_and_fill_what_the_index_missed():
    found = np.array([[3, 10, 11], [12, 4, 13], [-1, -1, 5]])
    np.testing.assert_array_equal(graph_mod._self_first(found, 3), [[3, 10, 11], [4, 12, 13], [5, 5, 5]])


def test_two_loops_on_one_pool_build_the_approximate_graph_once_and_pick_the_same_items(monkeypatch, tmp_path):
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.ledger import Ledger
    from tests.conftest import digits_config

    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(graph_mod, "EXACT_MAX", 100)  # digits (1,348 items) gets the approximate graph
    built = counting(monkeypatch)
    picks = []
    for name in ("first", "second"):
        ledger = f"sqlite:///{tmp_path / name}.db"
        Loop(config_from_dict(digits_config(ledger, stop={"max_labels": 30}))).run()
        picks.append(sorted(Ledger(ledger).open().labels("t").items()))
    assert built == ["_approximate"]
    assert picks[0] == picks[1] and len(picks[0]) == 30


def test_the_approximate_graph_is_faiss_own_index_search_with_cells_filled_once():
    faiss = pytest.importorskip("faiss")
    X = blobs(3000, seed=4).astype(np.float32)
    params = graph_params(len(X), 6, "approximate")
    rows = graph_mod._approximate(X, params)
    quantizer = faiss.IndexFlatL2(X.shape[1])  # the plain faiss way: add, then search (cells grown item by item)
    index = faiss.IndexIVFFlat(quantizer, X.shape[1], params["nlist"], faiss.METRIC_L2)
    index.cp.seed, index.cp.min_points_per_centroid = 0, 1
    index.train(X[np.sort(np.random.default_rng(0).choice(len(X), params["train"], replace=False))])
    index.add(X)
    index.nprobe = params["nprobe"]
    np.testing.assert_array_equal(rows, graph_mod._self_first(index.search(X, params["k"])[1], 0))


def test_releasing_freed_memory_is_a_no_op_without_malloc_trim(monkeypatch):
    import ctypes.util

    graph_mod.release_freed_memory()  # glibc: trims; elsewhere: nothing
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)  # no C library found (Windows)
    graph_mod.release_freed_memory()
