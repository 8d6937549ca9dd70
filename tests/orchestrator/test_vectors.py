"""Precomputed embeddings as a pool's features: a column of vectors, or a .npy / .npz / Parquet
matrix joined by id; and the errors for length and id mismatches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clicloop.orchestrator.config import Data, Source
from clicloop.orchestrator.data import load_data, read_pool
from clicloop.orchestrator.errors import DataError

TEXTS = ["book a table", "play jazz", "rain tomorrow?", "reserve dinner"]


@pytest.fixture
def pool_csv(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text("id,text\n" + "".join(f"i{k},{t}\n" for k, t in enumerate(TEXTS)))
    return path


def E(n=4, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_an_npy_matrix_gives_numeric_features_and_the_texts_stay_for_the_tasks(tmp_path, pool_csv):
    np.save(tmp_path / "e.npy", E())
    pool = read_pool(Source(path=pool_csv, id="id", text="text", embeddings=tmp_path / "e.npy"))
    assert pool.kind == "numeric" and pool.X.shape == (4, 3)
    np.testing.assert_array_equal(pool.X, E())
    assert pool.payload(2) == "rain tomorrow?"


def test_an_npz_with_ids_is_joined_by_id_in_any_order_and_extra_rows_are_ignored(tmp_path, pool_csv):
    X = E(5)
    np.savez(tmp_path / "e.npz", X=X, id=np.array(["i3", "zz", "i1", "i0", "i2"]))
    pool = read_pool(Source(path=pool_csv, id="id", text="text", embeddings=tmp_path / "e.npz"))
    np.testing.assert_array_equal(pool.X, X[[3, 2, 4, 0]])


def test_a_parquet_table_with_a_vector_column_is_joined_by_id(tmp_path, pool_csv):
    import pandas as pd

    X = E()
    pd.DataFrame({"id": ["i2", "i0", "i1", "i3"], "embedding": [list(X[i]) for i in (2, 0, 1, 3)]}).to_parquet(tmp_path / "e.parquet")
    pool = read_pool(Source(path=pool_csv, id="id", text="text", embeddings=tmp_path / "e.parquet"))
    np.testing.assert_allclose(pool.X, X)


def test_a_column_of_vectors_in_a_jsonl_pool(tmp_path):
    rows = [{"id": f"i{k}", "text": t, "vec": [k, k + 0.5]} for k, t in enumerate(TEXTS)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = read_pool(Source(path=tmp_path / "p.jsonl", id="id", text="text", vectors="vec"))
    assert pool.kind == "numeric" and pool.X.tolist()[3] == [3.0, 3.5] and pool.payload(0) == "book a table"


def test_a_pool_and_eval_with_embeddings_load_together(tmp_path, pool_csv):
    (tmp_path / "eval.csv").write_text("text,label\nbook it,a\nplay it,b\n")
    np.save(tmp_path / "e.npy", E())
    np.save(tmp_path / "ee.npy", E(2))
    data = Data(pool=Source(path=pool_csv, id="id", text="text", embeddings=tmp_path / "e.npy"),
                eval=Source(path=tmp_path / "eval.csv", text="text", label="label", embeddings=tmp_path / "ee.npy"))
    pool, evalset, labels = load_data(data, 0)
    assert evalset.X.shape == (2, 3) and labels == ("a", "b")


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p / "e.npy", E(3)), "3 rows of embeddings for 4 data rows"),
    (lambda p: np.savez(p / "e.npz", X=E(), id=np.array(["i0", "i1", "i2", "nope"])), r"no embeddings for 1 item\(s\), e.g. ids \['i3'\]"),
    (lambda p: np.savez(p / "e.npz", X=E(), id=np.array(["i0", "i0", "i1", "i2"])), "name more than one row"),
    (lambda p: np.savez(p / "e.npz", vectors=E()), "needs an array 'X'"),
    (lambda p: np.save(p / "e.npy", np.full((4, 2), np.nan)), "NaN or infinite embeddings"),
])
def test_mismatches_are_clear_errors(tmp_path, pool_csv, make, message):
    make(tmp_path)
    path = tmp_path / ("e.npy" if (tmp_path / "e.npy").exists() else "e.npz")
    with pytest.raises(DataError, match=message) as e:
        read_pool(Source(path=pool_csv, id="id", text="text", embeddings=path))
    assert str(path) in str(e.value)


def test_vectors_of_different_lengths_name_the_column(tmp_path):
    rows = [{"id": "a", "vec": [1, 2]}, {"id": "b", "vec": [1]}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="'vec' holds vectors of different lengths"):
        read_pool(Source(path=tmp_path / "p.jsonl", id="id", vectors="vec"))


def test_a_text_eval_set_against_an_embedded_pool_says_what_to_give(tmp_path, pool_csv):
    (tmp_path / "eval.csv").write_text("text,label\nbook it,a\nplay it,b\n")
    np.save(tmp_path / "e.npy", E())
    data = Data(pool=Source(path=pool_csv, id="id", text="text", embeddings=tmp_path / "e.npy"),
                eval=Source(path=tmp_path / "eval.csv", text="text", label="label"))
    with pytest.raises(DataError, match="same vectors or embeddings"):
        load_data(data, 0)


def test_the_config_refuses_both_a_vector_column_and_a_file(tmp_path):
    with pytest.raises(ValueError, match="either 'vectors'"):
        Source(path=tmp_path / "p.csv", vectors="v", embeddings=tmp_path / "e.npy")


def test_a_csv_of_embeddings_joins_zero_padded_ids_as_written(tmp_path):
    from clicloop.orchestrator.vectors import join

    path = tmp_path / "emb.csv"
    path.write_text("id,e0,e1\n00007,1,2\n7,3,4\n")
    X = join(path, np.array(["7", "00007"], dtype=object), True, "id")
    assert X.tolist() == [[3.0, 4.0], [1.0, 2.0]]


def test_an_embeddings_npz_with_object_ids_says_how_to_save_them_not_a_traceback(tmp_path, pool_csv):
    """Found 2026-12-07: ``np.savez(..., id=df.id.values.astype(str))`` stores an object array under
    pandas 3; the pool's own .npz had the hint, an embeddings .npz raised numpy's ValueError."""
    np.savez(tmp_path / "e.npz", X=E(), id=np.array(["i0", "i1", "i2", "i3"], dtype=object))
    with pytest.raises(DataError, match=r"e.npz: cannot read it: .*dtype=str"):
        read_pool(Source(path=pool_csv, id="id", text="text", embeddings=tmp_path / "e.npz"))
