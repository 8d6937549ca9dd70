import gzip
import json

import numpy as np
import pytest

from clicloop.orchestrator.errors import DataError
from clicloop.orchestrator.tables import read_table


def _rows(n):
    rng = np.random.default_rng(0)
    return [{"id": f"t{i}", "text": f"text number {i}", "score": float(rng.random()), "count": i,
             "label": "yes" if i % 3 == 0 else None} for i in range(n)]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".csv", ".tsv"])
def test_chunked_reading_gives_the_whole_file_columns(tmp_path, suffix):
    import pandas as pd

    path = tmp_path / f"pool{suffix}"
    frame = pd.DataFrame(_rows(11))
    if suffix.startswith(".jsonl"):
        text = "\n".join(json.dumps(r) for r in _rows(11)) + "\n"
        path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    whole, _ = read_table(path, chunk_rows=1000)
    chunked, _ = read_table(path, chunk_rows=3)  # 4 chunks, the last one short
    assert list(chunked) == list(whole) == ["id", "text", "score", "count", "label"]
    for column in whole:
        assert chunked[column].dtype == whole[column].dtype, column
        assert chunked[column].tolist() == whole[column].tolist() or column == "label"
    assert [v == "yes" for v in chunked["label"]] == [i % 3 == 0 for i in range(11)]
    assert chunked["count"].dtype.kind == "i" and chunked["score"].dtype.kind == "f"


def test_a_key_absent_from_a_whole_chunk_is_none_there(tmp_path):
    path = tmp_path / "pool.jsonl"
    rows = [{"id": i, "text": f"t{i}"} for i in range(4)] + [{"id": 4, "text": "t4", "extra": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cols, _ = read_table(path, chunk_rows=2)
    assert cols["extra"].tolist() == [None, None, None, None, "x"]
    assert cols["id"].tolist() == [0, 1, 2, 3, 4]


def test_a_non_object_line_in_a_later_chunk_is_named(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join([json.dumps({"id": i, "text": "a"}) for i in range(5)] + ["[1, 2]"]))
    with pytest.raises(DataError, match=r"line 6 is an array"):
        read_table(path, chunk_rows=2)


@pytest.mark.parametrize("name", ["pool.csv", "pool.jsonl", "pool.csv.gz"])
def test_a_file_that_is_not_utf8_names_its_line_and_the_fix(tmp_path, name):
    """A Latin-1 pool said "'utf-8' codec can't decode byte 0xe9 in position 3", with no line."""
    rows = [b"id,text", b"1,hello", b"2,caf\xe9 au lait", b"3,bye"] if ".csv" in name else \
        [b'{"id": 1, "text": "hello"}', b'{"id": 2, "text": "caf\xe9"}']
    data = b"\n".join(rows) + b"\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError, match=rf"{name}: line 3 is not UTF-8.*iconv" if ".csv" in name else
                       rf"{name}: line 2 is not UTF-8.*iconv"):
        read_table(path)
