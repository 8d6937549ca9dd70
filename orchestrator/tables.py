"""Pool and evaluation files read into columns: CSV/TSV, JSON Lines, Parquet, ``.npy`` and ``.npz``.

CSV, TSV and JSON Lines (compressed or not) are parsed ``chunk_rows`` rows at a time and their
columns joined: parsing a whole file at once costs several times the columns it yields (pandas
holds the file's text and its own per-row objects meanwhile). A 1,000,000-text JSON Lines pool
of 102 MB was read at 1.32 GB of peak memory whole, 0.60 GB in chunks (docs/benchmarks.md). A
``.npy`` file is memory-mapped.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import DataError

CHUNK_ROWS = 1 << 16  # rows parsed at a time from a CSV, TSV or JSON Lines file


PICKLED_HINT = ("; clicloop loads no pickled objects, and an array of Python strings is one (pandas' "
                "`.values.astype(str)` gives one): save ids as a NumPy text array, e.g. np.savez(path, X=X, "
                "id=np.asarray(ids, dtype=str))")


def read_table(path: Path, chunk_rows: int | None = None, field: str | None = None,
               text_columns: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """``(columns, name)``: the file's columns as 1-D arrays (``__X__``: a ``.npy`` matrix);
    text files parsed ``chunk_rows`` rows at a time (default :data:`CHUNK_ROWS`). ``field``: the
    config field that names the file, for the error when it is missing. ``text_columns``: CSV
    columns read as written (ids: ``00007`` stays ``00007``, not the number 7)."""
    name = str(path)
    chunk_rows = chunk_rows or CHUNK_ROWS
    if not path.exists():
        where = f" (the config's {field}, relative to the config file)" if field else ""
        raise DataError(f"{name}: file not found{where}")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    try:
        if suffix == ".npy":
            return {"__X__": np.load(path, mmap_mode="r", allow_pickle=False)}, name
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}, name
        import pandas as pd

        if suffix in (".csv", ".csv.gz", ".tsv"):
            return _read_csv(path, "\t" if suffix == ".tsv" else ",", chunk_rows, text_columns), name
        if suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
            return _read_jsonl(path, chunk_rows), name
        if suffix == ".parquet":
            frame = _read_parquet(path)
            return {c: frame[c].to_numpy() for c in frame.columns}, name
        raise DataError(f"{name}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl, .parquet, .npy or .npz")
    except DataError:
        raise
    except UnicodeDecodeError as e:
        raise DataError(f"{name}: {_not_utf8(path)} is not UTF-8 ({e.reason}); save the file as UTF-8 "
                        f"(e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}`)") from e
    except (ValueError, OSError) as e:
        hint = ("; a row with more fields than the header usually holds an unquoted comma: quote that text field "
                "(\"...\")") if "Error tokenizing data" in str(e) else (
                PICKLED_HINT) if "allow_pickle=False" in str(e) else ""
        raise DataError(f"{name}: cannot read it: {str(e).strip()}{hint}") from e
    except (EOFError, zlib.error) as e:  # a truncated or corrupt .gz (click would turn EOFError into a silent abort)
        raise DataError(f"{name}: cannot read it, the compressed file is truncated or corrupt ({e}); copy it again "
                        "from its source") from e


def _read_csv(path: Path, sep: str, chunk_rows: int, text_columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A CSV or TSV file's columns; a first row with more fields than the header is an error
    naming its line (pandas would take its first fields as an index and shift every column)."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            with pd.read_csv(path, sep=sep, chunksize=chunk_rows, index_col=False,
                             dtype={c: str for c in text_columns}) as chunks:
                return _columns(chunks)
        except pd.errors.ParserWarning as e:
            raise DataError(f"{path}: {_ragged(path, sep)}; a row with more fields than the header usually holds an "
                            "unquoted comma: quote that text field (\"...\")") from e


def _not_utf8(path: Path) -> str:
    """Which line of a text file first holds bytes that are not UTF-8 ("line N")."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return f"line {number}"
    return "a line"


def _ragged(path: Path, sep: str) -> str:
    """Where a CSV file's rows first differ from its header in their number of fields."""
    import csv
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter=sep)
        header = next(rows, [])
        for row in rows:
            if row and len(row) != len(header):
                return f"line {rows.line_num} has {len(row)} fields, the header {len(header)}"
    return "a row has more fields than the header"


def _columns(frames: Iterable[Any]) -> dict[str, np.ndarray]:
    """The columns of consecutive row chunks (pandas frames), joined; a column a chunk lacks
    (a JSON key absent from all its lines) is None there."""
    parts: dict[Any, list[np.ndarray]] = {}
    rows = 0
    for frame in frames:
        for c in frame.columns:
            if c not in parts:
                parts[c] = [np.full(rows, None, dtype=object)] if rows else []
            parts[c].append(frame[c].to_numpy())
        for c in parts.keys() - set(frame.columns):
            parts[c].append(np.full(len(frame), None, dtype=object))
        rows += len(frame)
    return {c: _join(p) for c, p in parts.items()}


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """One array of the chunks of a column: numbers stay numbers (ints and floats give floats, as
    pandas gives for a whole file), anything mixed with text or None becomes objects."""
    if len(parts) == 1:
        return parts[0]
    kinds = {p.dtype.kind for p in parts}
    if kinds <= set("iuf") or len({p.dtype for p in parts}) == 1:
        return np.concatenate(parts)
    return np.concatenate([p.astype(object) for p in parts])


def _read_jsonl(path: Path, chunk_rows: int) -> dict[str, np.ndarray]:
    """A JSON Lines file of one object per line (a line that is an array, a number or a string is
    named, with its line number)."""
    import pandas as pd

    def checked(reader: Any) -> Any:
        for frame in reader:
            if not all(isinstance(c, str) for c in frame.columns):  # lines that are arrays or scalars: numbered columns
                _first_non_object(path)
            yield frame

    try:
        with pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows, encoding="utf-8-sig") as reader:
            return _columns(checked(reader))
    except DataError:
        raise
    except (TypeError, ValueError) as e:
        _first_non_object(path)
        raise DataError(f"{path}: cannot read it: {e}") from e


def _first_non_object(path: Path) -> None:
    """Raise a DataError naming the first line of a JSONL file that is not a JSON object."""
    import gzip
    import json

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig") as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {n} is not valid JSON ({e.msg})") from e
            if not isinstance(value, dict):
                kind = {list: "an array", str: "a string"}.get(type(value), "a number" if value is not None else "null")
                raise DataError(f'{path}: line {n} is {kind}, not an object; each line must be one object, such as '
                                '{"id": "a1", "text": "..."}')


def _read_parquet(path: Path) -> Any:
    import pandas as pd

    try:
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'clicloop[parquet]'") from e
    return pd.read_parquet(path)
