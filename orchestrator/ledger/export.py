"""Export every ledger table to CSV or Parquet, streaming in chunks (bounded memory).

Left out: the meta table, the platforms' submission ids (``external_id``: with the platform's
records they name the person; kept only with ``include_external_ids``), and any secret in a
stored loop config (``credentials.public_config``, for ledgers an older clicloop wrote)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Integer, inspect

from clicloop.orchestrator.credentials import public_config
from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s

CHUNK = 100_000


PRIVATE_COLUMNS = {"assignments": ("external_id",)}


def export(ledger: Ledger, out_dir: Path, fmt: str = "csv", *, include_external_ids: bool = False) -> dict[str, int]:
    """Write ``<table>.csv`` or ``<table>.parquet`` for every table (but ``clicloop_meta`` and
    ``runner_leases``); returns rows per table."""
    import pandas as pd

    if fmt not in ("csv", "parquet"):
        raise LedgerError(f"export format must be csv or parquet, not {fmt!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    with ledger.engine_.connect() as conn:
        present = set(inspect(conn).get_table_names())  # a ledger of an earlier schema (never migrated here) lacks some
    for table in s.TABLES:
        if table is s.meta or table is s.runner_leases:  # the ledger's id and key check; leases: not facts
            continue
        columns = [c for c in table.columns if include_external_ids or c.name not in PRIVATE_COLUMNS.get(table.name, ())]
        path = out_dir / f"{table.name}.{fmt}"
        n, writer = 0, None
        with ledger.engine_.connect() as conn:
            frames = pd.read_sql_query(table.select().with_only_columns(*columns), conn, chunksize=CHUNK) if table.name in present else []
            for frame in frames:
                if frame.empty:
                    continue
                if table is s.loops:
                    frame["config_json"] = frame["config_json"].map(_public_json)
                if fmt == "csv":
                    frame.to_csv(path, mode="a" if n else "w", header=not n, index=False)
                else:
                    writer = _parquet_write(writer, frame, path, columns)
                n += len(frame)
        if writer is not None:
            writer.close()
        if n == 0:  # an empty table, or one the ledger predates, still gets a file with its columns
            empty = pd.DataFrame(columns=[c.name for c in columns])
            empty.to_csv(path, index=False) if fmt == "csv" else empty.to_parquet(path)
        counts[table.name] = n
    return counts


def _public_json(text: str) -> str:
    import json

    try:
        return json.dumps(public_config(json.loads(text)), sort_keys=True)
    except json.JSONDecodeError:
        return "{}"  # not ours to show: it might hold anything


def _parquet_write(writer: Any, frame: Any, path: Path, columns: list[Column[Any]]) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise LedgerError("Parquet export needs pyarrow: pip install 'clicloop[parquet]'") from e
    schema = pa.schema([(c.name, _arrow_type(pa, c.type)) for c in columns])  # stable across chunks
    if writer is None:
        writer = pq.ParquetWriter(path, schema)
    writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
    return writer


def _arrow_type(pa: Any, sql_type: Any) -> Any:
    if isinstance(sql_type, Integer):  # BigInteger too
        return pa.int64()
    if isinstance(sql_type, Float):
        return pa.float64()
    return pa.string()
