"""Precomputed embeddings as a pool's (or evaluation set's) features: a column of vectors in the
data file (``vectors: COLUMN``), or a matrix in a file of its own joined by id
(``embeddings: PATH``):

- ``.npy``: a 2-D array, one row per data row, in the data file's order;
- ``.npz``: ``X``, a 2-D array, and optionally ``id``, a 1-D array of item ids (strings or
  integers) naming each row: with ``id`` the rows are joined to the data by id (extra rows are
  ignored, a missing id is an error), without it they are taken in the data file's order;
- ``.parquet``, ``.csv``, ``.jsonl``: an ``id`` column (the data's id column name, else ``id``)
  and either one column of vectors (lists of numbers) or numeric columns, joined by id.

Every mismatch (row count, a missing or duplicated id, vectors of different lengths, NaN) is a
:class:`~clicloop.orchestrator.errors.DataError` naming the file and what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import DataError
from clicloop.orchestrator.tables import read_table


def precomputed(cols: dict[str, Any], ids: np.ndarray, source: Any, name: str) -> np.ndarray:
    """The features ``source`` points at (``source.vectors`` or ``source.embeddings``), one row per
    item of ``ids`` (the data file's ids, in its order)."""
    if source.vectors:
        if source.vectors not in cols:
            raise DataError(f"{name}: vector column {source.vectors!r} not found; columns: {', '.join(map(repr, cols))}")
        return _finite(stack(cols[source.vectors], name, source.vectors), name)
    return _finite(join(Path(source.embeddings), ids, source.id is not None, source.id or "id"), str(source.embeddings))


def stack(values: Any, name: str, column: str) -> np.ndarray:
    """A column of vectors (lists or arrays of numbers) as a 2-D float32 matrix."""
    lengths = set()
    for i, v in enumerate(values):
        if v is None or isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
            raise DataError(f"{name}: column {column!r} row {i} holds {str(v)[:40]!r}, not a vector (a list of numbers)")
        lengths.add(len(v))
    if len(lengths) > 1:
        raise DataError(f"{name}: column {column!r} holds vectors of different lengths {sorted(lengths)[:5]}; "
                        "every row needs one of the same length")
    try:
        return np.asarray([np.asarray(v, dtype=np.float32) for v in values], dtype=np.float32).reshape(len(values), -1)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: column {column!r} holds non-numeric vectors ({e})") from e


def join(path: Path, ids: np.ndarray, by_id: bool, id_column: str) -> np.ndarray:
    """The matrix in ``path``, its rows put in the order of ``ids``."""
    name = str(path)
    if not path.exists():
        raise DataError(f"{name}: embeddings file not found")
    if path.suffix in (".npy", ".npz"):
        X, row_ids = _arrays(path, name)
        return _in_order(X, ids, name) if row_ids is None else _by_id(X, row_ids, ids, name)
    cols = _table(path, id_column)
    if id_column not in cols:
        raise DataError(f"{name}: the embeddings need an id column {id_column!r} to join them to the data "
                        f"(columns: {', '.join(map(repr, cols))})")
    rest = [c for c in cols if c != id_column]
    listy = [c for c in rest if len(cols[c]) and hasattr(cols[c][0], "__len__") and not isinstance(cols[c][0], str)]
    if len(listy) == 1:
        X = stack(cols[listy[0]], name, listy[0])
    else:
        numeric = [c for c in rest if np.issubdtype(np.asarray(cols[c]).dtype, np.number)]
        if not numeric:
            raise DataError(f"{name}: no vectors found: give one column of vectors (lists of numbers) or numeric columns")
        X = np.column_stack([np.asarray(cols[c], dtype=np.float32) for c in numeric])
    return _by_id(X, np.asarray(cols[id_column]), ids, name)


def _arrays(path: Path, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, ids or None)`` of a .npy or .npz file of embeddings, read as any data file is
    (:func:`~clicloop.orchestrator.tables.read_table`: no pickled arrays, the hint how to save them)."""
    cols, _ = read_table(path)
    if "__X__" in cols:
        return cols["__X__"], None
    if "X" not in cols:
        raise DataError(f"{name}: an .npz of embeddings needs an array 'X' (rows x dimensions), and optionally "
                        f"'id' naming each row; it holds {list(cols)}")
    return np.asarray(cols["X"]), (np.asarray(cols["id"]) if "id" in cols else None)


def _in_order(X: np.ndarray, ids: np.ndarray, name: str) -> np.ndarray:
    if X.ndim != 2:
        raise DataError(f"{name}: embeddings must be a 2-D array (rows x dimensions), got shape {X.shape}")
    if len(X) != len(ids):
        raise DataError(f"{name}: {len(X)} rows of embeddings for {len(ids)} data rows; without ids the rows must be "
                        "the data's rows, in order (or store an 'id' array next to 'X' in an .npz)")
    return X


def _by_id(X: np.ndarray, row_ids: np.ndarray, ids: np.ndarray, name: str) -> np.ndarray:
    if X.ndim != 2 or len(row_ids) != len(X):
        raise DataError(f"{name}: {len(row_ids)} ids for embeddings of shape {X.shape}; give one id per row of a 2-D array")
    keys = np.array([_key(v) for v in row_ids], dtype=object)
    uniq, counts = np.unique(keys.astype(str), return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{name}: ids {uniq[counts > 1][:5].tolist()} name more than one row of embeddings")
    where = {k: i for i, k in enumerate(keys)}
    missing = [i for i in ids if i not in where]
    if missing:
        raise DataError(f"{name}: no embeddings for {len(missing)} item(s), e.g. ids {missing[:5]}; embed every item "
                        "of the data file (ids are compared as text)")
    return np.asarray(X[np.fromiter((where[i] for i in ids), dtype=np.int64, count=len(ids))], dtype=np.float32)


def _table(path: Path, id_column: str) -> dict[str, Any]:
    """The columns of a Parquet, CSV or JSON Lines file of embeddings (a CSV's ids read as written,
    as the data file's are: ``00007`` stays ``00007``)."""
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8-sig")
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, dtype={id_column: str})
        else:
            raise DataError(f"{path}: unsupported embeddings file {path.suffix!r}; use .npy, .npz, .parquet, .csv or .jsonl")
    except ImportError as e:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'clicloop[parquet]'") from e
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: cannot read it: {e}") from e
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def _key(v: Any) -> str:
    """An id as text, as the data's ids are (``3.0`` -> ``3``)."""
    v = v.decode() if isinstance(v, bytes) else v
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v.item() if isinstance(v, np.generic) else v)


def _finite(X: np.ndarray, name: str) -> np.ndarray:
    bad = ~np.isfinite(np.asarray(X)).all(axis=1)
    if bad.any():
        raise DataError(f"{name}: NaN or infinite embeddings in rows {np.flatnonzero(bad)[:5].tolist()} (0-based)")
    return X
