import json

import numpy as np
import pytest

from clicloop.orchestrator.config import Source
from clicloop.orchestrator.data import read_eval, read_pool
from clicloop.orchestrator.errors import DataError


def test_csv_text_pool_with_seed_labels_and_truth(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text("id,text,label,truth\na,hello there,greet,greet\nb,bye now,,leave\nc,hi,,greet\n")
    pool = read_pool(Source(path=path, id="id", text="text", truth="truth"))
    assert list(pool.ids) == ["a", "b", "c"] and pool.kind == "text"
    assert pool.seed_labels == {"a": "greet"}
    assert list(pool.truth) == ["greet", "leave", "greet"]


def test_jsonl_parquet_and_npy_pools(tmp_path):
    rows = [{"id": i, "f1": float(i), "f2": 1.0 - i, "truth": i % 2} for i in range(6)]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pool = read_pool(Source(path=tmp_path / "p.jsonl", id="id", truth="truth", label=None))
    assert pool.X.shape == (6, 2) and list(pool.truth[:2]) == ["0", "1"]

    import pandas as pd

    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    pool = read_pool(Source(path=tmp_path / "p.parquet", id="id", features=["f1"], label=None))
    assert pool.X.shape == (6, 1) and list(pool.ids) == [str(i) for i in range(6)]

    np.save(tmp_path / "p.npy", np.ones((4, 3), dtype=np.float32))
    pool = read_pool(Source(path=tmp_path / "p.npy", label=None))
    assert pool.X.shape == (4, 3) and list(pool.ids) == ["0", "1", "2", "3"]


def test_duplicate_ids_are_named(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,text\nx,one\ny,two\nx,three\n")
    with pytest.raises(DataError, match=r"dup.csv.*duplicate id.*'x' in rows \[0, 2\] \(0-based, the header not counted\)"):
        read_pool(Source(path=path, id="id", text="text"))


def test_missing_ids_are_named(tmp_path):
    path = tmp_path / "miss.csv"
    path.write_text("id,text\nx,one\n,two\n")
    with pytest.raises(DataError, match=r"missing ids in rows 1"):
        read_pool(Source(path=path, id="id", text="text"))


def test_nan_features_are_named(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("id,f1,f2\na,1,2\nb,,3\nc,4,inf\n")
    with pytest.raises(DataError, match=r"nan.csv.*'f1'.*rows 1 "):
        read_pool(Source(path=path, id="id"))


def test_empty_pool_and_missing_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("id,text\n")
    with pytest.raises(DataError, match="empty"):
        read_pool(Source(path=path, id="id", text="text"))
    with pytest.raises(DataError, match=r"nope.csv: file not found \(the config's data.pool.path, relative to the config file\)"):
        read_pool(Source(path=tmp_path / "nope.csv"))
    with pytest.raises(DataError, match=r"nope.csv: file not found \(the config's data.eval.path"):
        read_eval(Source(path=tmp_path / "nope.csv"), "text")


def test_a_row_with_an_unquoted_comma_says_to_quote_it(tmp_path):
    path = tmp_path / "comma.csv"
    path.write_text("id,text,label\na,one,x\nb,two, three,y\n")
    with pytest.raises(DataError, match=r"comma.csv: cannot read it: .*Expected 3 fields in line 3, saw 4; .*quote that text field"):
        read_pool(Source(path=path, id="id", text="text"))


def test_eval_needs_labels_in_every_row(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("text,label\nhi,greet\nbye,\n")
    with pytest.raises(DataError, match=r"'label' is empty in evaluation rows 1"):
        read_eval(Source(path=path, text="text"), "text")


def test_a_float32_npz_pool_stays_float32_and_integer_features_become_float64(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    np.savez(tmp_path / "f32.npz", X=X)
    pool = read_pool(Source(path=tmp_path / "f32.npz", label=None))
    assert pool.X.dtype == np.float32  # half a float64 copy's memory: 1.5 GB, not 3.1, at 1,000,000 x 384
    np.testing.assert_array_equal(pool.X, X)
    np.savez(tmp_path / "int.npz", X=np.arange(12).reshape(4, 3))
    assert read_pool(Source(path=tmp_path / "int.npz", label=None)).X.dtype == np.float64
