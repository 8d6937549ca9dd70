"""Pools and evaluation sets: read from CSV, JSONL, Parquet or NumPy, validated strictly.

Every error names the file, the column and the rows at fault. Item ids are strings and stable
(the id column, or row numbers when there is none). Labels are strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clicloop.orchestrator.config import Data, Source
from clicloop.orchestrator.errors import DataError
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.tables import read_table


@dataclass
class Pool:
    """Items to label. ``X`` is a 2-D float array (numeric) or a 1-D object array of texts.

    ``truth`` (ground truth, None where unknown) is read only by the simulated crowd.
    """

    ids: np.ndarray
    X: Any
    kind: str
    truth: np.ndarray | None
    seed_labels: dict[str, str]
    source: str
    sensitive: np.ndarray | None = None  # flagged personal or sensitive in the data
    disturbing: np.ndarray | None = None  # flagged disturbing in the data (content warning)
    texts: np.ndarray | None = None  # the items' texts: X of a text pool, kept when X becomes its embeddings

    def __post_init__(self) -> None:
        if self.texts is None and self.kind == "text":
            self.texts = self.X

    def __len__(self) -> int:
        return len(self.ids)

    def payload(self, i: int) -> Any:
        return self.texts[i] if self.texts is not None else None


@dataclass
class EvalSet:
    X: Any
    y: np.ndarray
    source: str


def load_data(data: Data, seed: int) -> tuple[Pool, EvalSet | None, tuple[str, ...]]:
    """Load the pool, the evaluation set and the label set a config describes."""
    if data.builtin is not None:
        pool, evalset = _builtin(data.builtin, data.eval_fraction, seed)
    elif data.pool is not None:
        pool = read_pool(data.pool)
        evalset = read_eval(data.eval, pool.kind) if data.eval is not None else None
        if evalset is not None and pool.kind == "numeric" and pool.X.shape[1] != evalset.X.shape[1]:
            raise DataError(f"{evalset.source}: the evaluation set has {evalset.X.shape[1]} feature(s) but the pool "
                            f"{pool.source} has {pool.X.shape[1]}; give both the same feature columns (data.pool.features, "
                            "data.eval.features)")
    else:
        raise DataError("the config gives neither data.builtin nor data.pool")
    if data.seed_size:
        _draw_seed(pool, data.seed_size, seed)
    return pool, evalset, _label_set(data, pool, evalset)


def read_pool(source: Source) -> Pool:
    cols, name = read_table(source.path, field="data.pool.path", text_columns=(source.id,) if source.id else ())
    n = _n_rows(cols, name)
    if n == 0:
        raise DataError(f"{name}: the pool is empty; nothing to label")
    if source.label and "label" in source.model_fields_set and source.label not in cols:  # a typo: no seed label, no word
        raise DataError(f"{name}: label column {source.label!r} (data.pool.label) not found; columns: {_names(cols)}")
    ids = _ids(cols, source, n, name)
    kind, X, texts = _features_of(cols, source, ids, name)
    truth = _labels(cols, source.truth, name, "data.pool.truth") if source.truth else None
    seed_labels: dict[str, str] = {}
    if source.label and source.label in cols:
        labels = _labels(cols, source.label, name, "data.pool.label")
        seed_labels = {ids[i]: labels[i] for i in np.flatnonzero(labels != None)}  # noqa: E711
    sensitive = _flags(cols, source.sensitive, name, "data.pool.sensitive") if source.sensitive else None
    disturbing = _flags(cols, source.disturbing, name, "data.pool.disturbing") if source.disturbing else None
    return Pool(ids, X, kind, truth, seed_labels, name, sensitive, disturbing, texts)


def _features_of(cols: dict[str, Any], source: Source, ids: np.ndarray, name: str) -> tuple[str, Any, np.ndarray | None]:
    """``(kind, X, texts)``: precomputed embeddings (``vectors`` / ``embeddings``) are numeric
    features, the text column (if any) is kept for the tasks."""
    if not (source.vectors or source.embeddings):
        kind, X = _features(cols, source, name)
        return kind, X, X if kind == "text" else None
    from clicloop.orchestrator.vectors import precomputed

    texts = _features(cols, source, name)[1] if source.text else None
    return "numeric", precomputed(cols, ids, source, name), texts


def _flags(cols: dict[str, Any], column: str, name: str, field: str) -> np.ndarray:
    if column not in cols:
        raise DataError(f"{name}: flag column {column!r} ({field}) not found; columns: {_names(cols)}")
    truthy, falsy = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f", ""}
    out = np.zeros(len(cols[column]), dtype=bool)
    for i, v in enumerate(cols[column]):
        text = "" if _is_missing(v) else str(v).strip().lower()
        if text in {"1.0"}:
            text = "1"
        if text not in truthy | falsy and text != "0.0":
            raise DataError(f"{name}: column {column!r} row {i} holds {v!r}; use true/false (or 1/0)")
        out[i] = text in truthy
    return out


def read_eval(source: Source, kind: str) -> EvalSet:
    cols, name = read_table(source.path, field="data.eval.path", text_columns=(source.id,) if source.id else ())
    if _n_rows(cols, name) == 0:
        raise DataError(f"{name}: the evaluation set is empty")
    ids = _ids(cols, source, _n_rows(cols, name), name) if source.embeddings else np.empty(0, dtype=object)
    got_kind, X, _ = _features_of(cols, source, ids, name)
    if got_kind != kind:
        raise DataError(f"{name}: the evaluation set has {got_kind} features but the pool has {kind} features"
                        + (" (give data.eval the same vectors or embeddings as data.pool)" if kind == "numeric" else ""))
    if not source.label or source.label not in cols:
        raise DataError(f"{name}: the evaluation set needs a label column: {source.label!r} (data.eval.label) not "
                        f"found; columns: {_names(cols)}")
    y = _labels(cols, source.label, name, "data.eval.label")
    missing = np.flatnonzero(y == None)  # noqa: E711
    if missing.size:
        raise DataError(f"{name}: column {source.label!r} is empty in evaluation rows {_rows(missing)}")
    return EvalSet(X, y.astype(str), name)


def _n_rows(cols: dict[str, Any], name: str) -> int:
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise DataError(f"{name}: arrays have different lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _ids(cols: dict[str, Any], source: Source, n: int, name: str) -> np.ndarray:
    if source.id is None:
        return np.array([str(i) for i in range(n)], dtype=object)
    if source.id not in cols:
        raise DataError(f"{name}: id column {source.id!r} not found; columns: {_names(cols)}")
    raw = cols[source.id]
    missing = np.flatnonzero([_is_missing(v) for v in raw])
    if missing.size:
        raise DataError(f"{name}: column {source.id!r} has missing ids in rows {_rows(missing)}")
    odd = np.flatnonzero([isinstance(v, (bool, np.bool_, dict, list)) for v in raw])
    if odd.size:
        raise DataError(f"{name}: column {source.id!r} holds {raw[odd[0]]!r} in rows {_rows(odd)}; an id is a text or a "
                        "whole number")
    ids = np.array([_label_str(v) for v in raw], dtype=object)
    uniq, first, counts = np.unique(ids.astype(str), return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = [str(d) for d in uniq[counts > 1][:5]]
        rows = {d: np.flatnonzero(ids == d)[:3].tolist() for d in dup}
        raise DataError(
            f"{name}: column {source.id!r} has {int((counts > 1).sum())} duplicate id(s), "
            + "; ".join(f"{d!r} in rows {r}" for d, r in rows.items())
            + " (0-based, the header not counted). Item ids must be unique and stable."
        )
    return ids


def _features(cols: dict[str, Any], source: Source, name: str) -> tuple[str, Any]:
    if "__X__" in cols:
        X = cols["__X__"]
        if X.ndim != 2:
            raise DataError(f"{name}: a .npy pool must be a 2-D array (rows x features), got shape {X.shape}")
        return "numeric", _finite_or_raise(X, name)
    if source.text:
        if source.text not in cols:
            raise DataError(f"{name}: text column {source.text!r} not found; columns: {_names(cols)}")
        texts = cols[source.text]
        bad = np.flatnonzero([not isinstance(t, str) or not t.strip() for t in texts])
        if bad.size:
            raise DataError(f"{name}: column {source.text!r} has empty or non-text values in rows {_rows(bad)}")
        return "text", np.asarray(texts, dtype=object)
    if "X" in cols and np.asarray(cols["X"]).ndim == 2:  # .npz with an X array
        return "numeric", _finite_or_raise(_float_matrix(cols["X"]), name)
    reserved = {source.id, source.label, source.truth, source.sensitive, source.disturbing, source.vectors}
    if not source.features:
        _no_stray_text(cols, reserved, name)
    names = source.features or [c for c in cols if c not in reserved and np.issubdtype(np.asarray(cols[c]).dtype, np.number)]
    if not names:
        raise DataError(f"{name}: no features found; name a 'text' column or numeric 'features' (columns: {_names(cols)})")
    for c in names:
        if c not in cols:
            raise DataError(f"{name}: feature column {c!r} not found; columns: {_names(cols)}")
        try:
            col = np.asarray(cols[c], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(_not_numeric(cols[c], name, c, e)) from e
        _check_finite(col, name, c)
    # float32 columns (Parquet, Arrow) stay float32, as a float32 .npy does: half the memory on large pools
    dtype = np.float32 if all(np.asarray(cols[c]).dtype == np.float32 for c in names) else np.float64
    return "numeric", np.column_stack([np.asarray(cols[c], dtype=dtype) for c in names])


def _not_numeric(col: Any, name: str, column: str, error: Exception) -> str:
    """The message for a listed feature column that does not convert: its first cells that are
    filled and not numbers (a text cell, or a CSV row short of a field that shifted its label)."""
    values = np.asarray(col, dtype=object)
    filled, numbers = _filled_and_numbers(values)
    bad = np.flatnonzero(filled & ~numbers)
    if not bad.size:
        return f"{name}: feature column {column!r} is not numeric ({error})"
    return (f"{name}: feature column {column!r} is not numeric: row {int(bad[0])} holds {values[bad[0]]!r}; "
            f"{bad.size} such row(s): {_rows(bad)}; fix those cells or rows, or leave the column out of "
            "data.pool.features / data.eval.features")


def _no_stray_text(cols: dict[str, Any], reserved: set[Any], name: str) -> None:
    """A column of numbers with a few text cells ('abc', '1,5', a blank ' ', or in JSON a number
    in quotes among numbers) would be left out of the features as a text column: name its first
    such cell instead (at least half its filled cells are numbers)."""
    for c, col in cols.items():
        col = np.asarray(col)
        if c in reserved or col.dtype != object or col.ndim != 1:
            continue
        filled, numbers = _filled_and_numbers(col)
        blank = np.array([isinstance(v, str) and not v.strip() for v in col], dtype=bool)
        real = np.array([isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) for v in col],
                        dtype=bool)
        json_lines = name.endswith((".jsonl", ".ndjson", ".jsonl.gz"))  # a CSV's chunks may parse one column two ways
        quoted = filled & numbers & ~real if json_lines and real.any() else np.zeros_like(filled)
        stray = np.flatnonzero((filled & ~numbers) | blank | quoted)
        if stray.size and (filled & numbers).any() and (filled & numbers).sum() >= filled.sum() / 2:
            row = int(stray[0])
            what = " (blank)" if blank[row] else " (a number written as text)" if quoted[row] else ""
            raise DataError(f"{name}: column {c!r} holds numbers but row {row} holds {col[row]!r}{what} "
                            f"(0-based; {stray.size} such row(s)); fix the cell, or list the feature columns "
                            "(data.pool.features / data.eval.features) to leave the column out")


def _filled_and_numbers(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of a 1-D column: filled (not missing), and a number or a text that reads as one;
    a cell filled and not a number is text where numbers belong (the one rule of both messages)."""
    import pandas as pd

    filled = np.array([not _is_missing(v) for v in col], dtype=bool)
    return filled, pd.to_numeric(pd.Series(col), errors="coerce").notna().to_numpy()


def _float_matrix(X: Any) -> np.ndarray:
    """``X`` as floats without a copy where it already is: float32 stays float32 (embeddings, half
    the memory of float64: 1.5 GB for 1,000,000 x 384 instead of 3.1 GB); other types become float64."""
    X = np.asarray(X)
    return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)


LARGEST = 1e150  # a feature's square must stay finite (distances, variances): beyond this it overflows
UNUSABLE = f"NaN, infinite or too large (beyond +-{LARGEST:g}: their squares overflow)"


def _unusable(block: np.ndarray) -> np.ndarray:
    """Per row (or value): NaN, infinite, or so large that its square overflows (float64: a finite
    float32 is below 3.5e38, its square finite in the float64 the models compute in)."""
    bad = ~np.isfinite(block)
    if block.dtype == np.float64:
        bad |= np.abs(block) > LARGEST
    return bad if bad.ndim == 1 else bad.any(axis=1)


def _finite_or_raise(X: Any, name: str, chunk: int = 1 << 15) -> Any:
    for start in range(0, len(X), chunk):
        bad = _unusable(np.asarray(X[start : start + chunk]))
        if bad.any():
            raise DataError(f"{name}: {UNUSABLE} features in rows {_rows(np.flatnonzero(bad) + start)}")
    return X


def _check_finite(col: np.ndarray, name: str, column: str) -> None:
    bad = _unusable(col)
    if bad.any():
        raise DataError(f"{name}: column {column!r} has {UNUSABLE} values in rows {_rows(np.flatnonzero(bad))}")


def _labels(cols: dict[str, Any], column: str, name: str, field: str) -> np.ndarray:
    if column not in cols:
        what = "ground-truth" if field.endswith("truth") else "label"
        raise DataError(f"{name}: {what} column {column!r} ({field}) not found; columns: {_names(cols)}")
    return np.array([None if _is_missing(v) else _label_str(v) for v in cols[column]], dtype=object)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())


def _label_str(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v.item() if isinstance(v, np.generic) else v)


def _names(cols: dict[str, Any]) -> str:
    return ", ".join(repr(c) for c in cols)


def _rows(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:5])
    return shown + (f" and {rows.size - 5} more" if rows.size > 5 else "") + " (0-based)"


# -- builtin data, seed labels and the label set -----------------------------------------------


def _builtin(name: str, eval_fraction: float, seed: int) -> tuple[Pool, EvalSet]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = rng_for(seed, "builtin-split", name).permutation(len(y))
    n_eval = int(round(len(y) * eval_fraction))
    ev, po = order[:n_eval], np.sort(order[n_eval:])
    ids = np.array([f"digit-{i:04d}" for i in po], dtype=object)
    truth = y[po].astype(str).astype(object)
    pool = Pool(ids, X[po].astype(np.float64), "numeric", truth, {}, f"builtin:{name}")
    return pool, EvalSet(X[ev].astype(np.float64), y[ev].astype(str), f"builtin:{name}")


def _draw_seed(pool: Pool, size: int, seed: int) -> None:
    if pool.truth is None:
        raise DataError(f"{pool.source}: data.seed_size needs ground truth (data.pool.truth)")
    known = np.flatnonzero(pool.truth != None)  # noqa: E711
    if size > known.size or size >= len(pool.ids):
        raise DataError(f"{pool.source}: data.seed_size is {size:,} but the pool has {len(pool.ids):,} items, "
                        f"{known.size:,} of them with ground truth: seed labels must leave items to label; "
                        "lower data.seed_size")
    chosen = rng_for(seed, "seed-labels").choice(known, size=size, replace=False)
    for i in np.sort(chosen):
        pool.seed_labels.setdefault(pool.ids[i], pool.truth[i])


def _label_set(data: Data, pool: Pool, evalset: EvalSet | None) -> tuple[str, ...]:
    """``data.labels``, else every label the seed labels, the evaluation set and the ground truth
    hold; refused when they contradict each other (a typo must not become a class of its own)."""
    seed = set(pool.seed_labels.values())
    evals = set(evalset.y.tolist()) if evalset is not None else set()
    truth = {t for t in pool.truth if t is not None} if pool.truth is not None else set()
    if data.labels:
        labels = tuple(str(label) for label in data.labels)
        for what, source, found in (("seed labels", pool.source, seed), ("evaluation labels", evalset and evalset.source, evals)):
            unknown = sorted(found - set(labels), key=_natural)
            if unknown:
                raise DataError(f"{source}: {what} {unknown[:5]} are not in data.labels {list(labels)[:10]}")
        return labels
    if evalset is not None and seed | truth and not evals & (seed | truth):
        raise DataError(f"{evalset.source}: its labels {sorted(evals, key=_natural)[:5]} match none of the pool's "
                        f"{sorted(seed | truth, key=_natural)[:5]}; use the same label names in both files")
    stray = sorted(seed - evals - truth, key=_natural) if evalset is not None else []
    if stray:
        raise DataError(f"{pool.source}: seed label(s) {stray[:5]} appear nowhere in the evaluation set"
                        f"{' or the ground truth' if truth else ''}; a typo would become a class of its own. Fix them, "
                        "or list every label in data.labels")
    unused = sorted(evals - seed - truth, key=_natural) if evalset is not None and truth else []
    if unused:
        raise DataError(f"{evalset.source}: evaluation label(s) {unused[:5]} appear nowhere in the pool's ground truth "
                        "or seed labels; a typo would become a class of its own (and an accuracy target out of reach). "
                        "Fix them, or list every label in data.labels")
    found = seed | evals | truth
    _no_near_twins(found, evalset.source if evalset is not None else pool.source)
    if len(found) < 2:
        raise DataError(
            f"{pool.source}: cannot infer a label set of at least two labels; list them in data.labels"
        )
    return tuple(sorted(found, key=_natural))


def _no_near_twins(labels: set[str], source: Any) -> None:
    """Two labels that differ only in letter case or surrounding spaces ('Eel' and 'eel', 'cat '
    and 'cat') are one class spelled two ways: refused, naming both."""
    seen: dict[str, str] = {}
    for label in sorted(labels, key=_natural):
        twin = seen.setdefault(label.strip().casefold(), label)
        if twin != label:
            raise DataError(f"{source}: labels {twin!r} and {label!r} differ only in letter case or spaces; a typo "
                            "would become a class of its own. Spell them the same in every file, or list every label "
                            "in data.labels")


def _natural(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)
