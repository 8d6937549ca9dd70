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


def test_a_label_column_the_config_names_must_exist(tmp_path):
    """`label: topc` (a typo for `topic`) dropped every seed label without a word: the loop ran a
    cold start. A label column named in the config is required; the default `label` is not."""
    path = tmp_path / "pool.csv"
    path.write_text("id,f0,f1,topic\na,1,2,x\nb,3,4,\nc,5,6,y\n")
    with pytest.raises(DataError, match=r"pool.csv: label column 'topc' \(data.pool.label\) not found; columns: 'id', 'f0', 'f1', 'topic'"):
        read_pool(Source(path=path, id="id", label="topc", features=["f0", "f1"]))
    assert read_pool(Source(path=path, id="id", label="topic")).seed_labels == {"a": "x", "c": "y"}
    assert read_pool(Source(path=path, id="id", features=["f0", "f1"])).seed_labels == {}  # the default 'label': none


def test_csv_ids_are_read_as_written(tmp_path):
    """Ids were parsed as numbers: '00007' became '7', and '3' and '03' were refused as duplicates."""
    path = tmp_path / "pool.csv"
    path.write_text("id,f0\n00007,1\n3,2\n03,3\n3.0,4\n")
    assert read_pool(Source(path=path, id="id")).ids.tolist() == ["00007", "3", "03", "3.0"]


def test_features_too_large_to_compute_with_are_named(tmp_path):
    """1e308 is finite but its square is not: the loop failed late with a strategy error, after
    the loop was registered."""
    path = tmp_path / "pool.csv"
    path.write_text("id,f0,f1\na,1,2\nb,1e308,3\nc,-1e308,4\n")
    with pytest.raises(DataError, match=r"pool.csv: column 'f0' has .*too large.* in rows 1, 2 \(0-based\)"):
        read_pool(Source(path=path, id="id"))
    npy = tmp_path / "pool.npy"
    np.save(npy, np.array([[1.0, 2.0], [1e200, 0.0]]))
    with pytest.raises(DataError, match=r"pool.npy: .*too large.* in rows 1 \(0-based\)"):
        read_pool(Source(path=npy))


def test_a_number_column_with_one_text_cell_is_named_not_dropped(tmp_path):
    """A column of numbers with 'abc' in one row became a text column and was left out of the
    features without a word (the error came later: 'the evaluation set has 4 feature(s)')."""
    path = tmp_path / "pool.csv"
    path.write_text("id,f0,f1\na,1,2\nb,abc,3\nc,5,4\nd,6,5\n")
    with pytest.raises(DataError, match=r"pool.csv: column 'f0' holds numbers but row 1 holds 'abc'"):
        read_pool(Source(path=path, id="id"))


def test_a_listed_feature_column_with_text_names_the_row(tmp_path):
    """With the features listed, a text cell (here a CSV row one field short, its label shifted into
    f1) said only 'could not convert string to float', not where."""
    path = tmp_path / "pool.csv"
    path.write_text("id,f0,f1,label\na,1,2,x\nb,3,x\nc,5,4,y\nd,6,z,y\n")
    with pytest.raises(DataError, match=r"pool.csv: feature column 'f1' is not numeric: row 1 holds 'x'; "
                                        r"2 such row\(s\): 1, 3 \(0-based\)"):
        read_pool(Source(path=path, id="id", features=["f0", "f1"], truth="label"))


@pytest.mark.parametrize(("name", "text", "says"), [
    ("pool.csv", "id,f0,f1\na,1,2\nb, ,3\nc,5,4\nd,6,5\n", r"row 1 holds ' ' \(blank\)"),
    ("pool.jsonl", '{"id": "a", "f0": 1, "f1": 2}\n{"id": "b", "f0": "", "f1": 3}\n{"id": "c", "f0": 5, "f1": 4}\n',
     r"row 1 holds '' \(blank\)"),
    ("pool.jsonl", '{"id": "a", "f0": 1, "f1": 2}\n{"id": "b", "f0": "1.5", "f1": 3}\n{"id": "c", "f0": 5, "f1": 4}\n',
     r"row 1 holds '1.5' \(a number written as text\)"),
])
def test_a_number_column_with_a_blank_or_quoted_cell_is_named_not_dropped(tmp_path, name, text, says):
    """Found 2026-12-06: one blank cell, or in JSON a number in quotes, made the column text and
    it was left out of the features without a word (the loop ran and bought labels on the rest)."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=rf"{name}: column 'f0' holds numbers but {says}"):
        read_pool(Source(path=path, id="id"))


def test_a_row_with_more_fields_than_the_header_is_named(tmp_path):
    """The first data row with extra fields made pandas take the first columns as an index: the
    columns shifted and the error named '17 duplicate ids'."""
    path = tmp_path / "pool.csv"
    path.write_text("id,f0,f1,label\na,1,2,x,extra,more\nb,3,4,y\nc,5,6,z\n")
    with pytest.raises(DataError, match=r"pool.csv: line 2 has 6 fields, the header 4; .*quote"):
        read_pool(Source(path=path, id="id"))


def test_empty_and_blank_texts_are_refused(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"id": "a", "text": "hello"}\n{"id": "b", "text": ""}\n{"id": "c", "text": "   "}\n')
    with pytest.raises(DataError, match=r"column 'text' has empty or non-text values in rows 1, 2 \(0-based\)"):
        read_pool(Source(path=path, id="id", text="text"))


def test_flag_columns_are_not_features(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text("id,f0,f1,sensitive,disturbing\na,1,2,0,1\nb,3,4,1,0\n")
    pool = read_pool(Source(path=path, id="id", sensitive="sensitive", disturbing="disturbing"))
    assert pool.X.shape == (2, 2) and pool.sensitive.tolist() == [False, True]


def test_a_jsonl_pool_with_a_byte_order_mark_reads_as_a_csv_one_does(tmp_path):
    """A BOM (Windows tools write one) was accepted in CSV but refused in JSON Lines: 'line 1 is
    not valid JSON (Unexpected UTF-8 BOM ...)'."""
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"id": "a", "text": "hello"}\n{"id": "b", "text": "bye"}\n')
    assert read_pool(Source(path=path, id="id", text="text")).ids.tolist() == ["a", "b"]


def test_an_id_that_is_an_object_a_list_or_a_boolean_is_refused(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"id": "a", "text": "one"}\n{"id": {"a": 1}, "text": "two"}\n{"id": true, "text": "three"}\n')
    with pytest.raises(DataError, match=r"column 'id' holds \{'a': 1\} in rows 1, 2 \(0-based\); an id is a text or a whole number"):
        read_pool(Source(path=path, id="id", text="text"))


def test_a_float32_parquet_pool_stays_float32(tmp_path):
    """Found 2026-12-06: a Parquet pool of float32 features was widened to float64, twice the
    memory a float32 .npy of the same data takes (488 MB against 244 MB at 1,000,000 x 64)."""
    import pandas as pd

    frame = pd.DataFrame({"id": ["a", "b", "c"], "f0": np.array([1, 2, 3], np.float32),
                          "f1": np.array([0.5, 0.25, 1], np.float32)})
    frame.to_parquet(tmp_path / "p.parquet")
    pool = read_pool(Source(path=tmp_path / "p.parquet", id="id"))
    assert pool.X.dtype == np.float32 and pool.X.tolist() == [[1, 0.5], [2, 0.25], [3, 1]]
    frame.astype({"f1": np.float64}).to_parquet(tmp_path / "mixed.parquet")
    assert read_pool(Source(path=tmp_path / "mixed.parquet", id="id")).X.dtype == np.float64


def test_an_npz_with_object_ids_says_to_save_them_as_text(tmp_path):
    """Found 2026-12-06: ids saved as an object array failed with numpy's own "Object arrays
    cannot be loaded when allow_pickle=False", saying nothing of what to do."""
    np.savez(tmp_path / "p.npz", X=np.ones((3, 2)), id=np.array(["a", "b", 3], dtype=object))
    with pytest.raises(DataError, match=r"p.npz: cannot read it: .*save ids as a NumPy text array"):
        read_pool(Source(path=tmp_path / "p.npz", id="id", label=None))


def test_a_big_csv_whose_chunks_read_a_column_two_ways_names_its_text_cell(tmp_path):
    """A CSV is parsed 65,536 rows at a time: the chunk holding 'abc' reads its column as text, the
    others as numbers. The check for numbers written as text in JSON (2026-12-06) first took
    that chunk's numbers for quoted ones and named row 196608's '196608'."""
    lines = ["id,f0,f1"] + [f"i{i},{i},{i % 7}" for i in range(300_000)]
    lines[250_001] = "i250000,abc,1"
    (tmp_path / "pool.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"column 'f0' holds numbers but row 250000 holds 'abc'"):
        read_pool(Source(path=tmp_path / "pool.csv", id="id"))


@pytest.mark.parametrize("size", [1348, 5000])
def test_seed_labels_that_leave_nothing_to_label_are_refused_before_the_loop_registers(tmp_path, size):
    """Found 2026-12-07: data.seed_size 5000 on digits' 1,348 pool items made every item a seed
    label; the loop registered, bought nothing and stopped "pool exhausted"."""
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.ledger import Ledger
    from tests.conftest import digits_config

    url = f"sqlite:///{tmp_path / 'l.db'}"
    with pytest.raises(DataError, match=rf"data.seed_size is {size:,} but the pool has 1,348 items"):
        Loop(config_from_dict(digits_config(url, data={"builtin": "digits", "seed_size": size}))).run()
    with Ledger(url) as ledger:
        assert ledger.loops() == []


def test_a_missing_truth_or_eval_label_column_names_its_field_and_the_columns(tmp_path):
    """Found 2026-12-07: a wrong `truth:` was reported as a "label column", with no field, so the
    user checked a correct `label:`; a wrong eval label listed no columns."""
    (tmp_path / "pool.csv").write_text("id,f0,topic\na,1,x\nb,2,y\n")
    with pytest.raises(DataError, match=r"ground-truth column 'gold' \(data.pool.truth\) not found; columns: 'id', 'f0', 'topic'"):
        read_pool(Source(path=tmp_path / "pool.csv", id="id", truth="gold"))
    with pytest.raises(DataError, match=r"'topik' \(data.eval.label\) not found; columns: 'id', 'f0', 'topic'"):
        read_eval(Source(path=tmp_path / "pool.csv", id="id", label="topik"), "numeric")
