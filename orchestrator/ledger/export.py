"""Export every ledger table to CSV or Parquet, streaming in chunks (bounded memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Float, Integer, Table

from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s

CHUNK = 100_000


def export(ledger: Ledger, out_dir: Path, fmt: str = "csv") -> dict[str, int]:
    """Write ``<table>.csv`` or ``<table>.parquet`` for every table (but ``clicloop_meta`` and
    ``runner_leases``); returns rows per table."""
    import pandas as pd

    if fmt not in ("csv", "parquet"):
        raise LedgerError(f"export format must be csv or parquet, not {fmt!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for table in s.TABLES:
        if table is s.meta or table is s.runner_leases:  # the pseudonym salt: never exported; leases: not facts
            continue
        path = out_dir / f"{table.name}.{fmt}"
        n, writer = 0, None
        with ledger.engine_.connect() as conn:
            for frame in pd.read_sql_query(table.select(), conn, chunksize=CHUNK):
                if frame.empty:
                    continue
                if fmt == "csv":
                    frame.to_csv(path, mode="a" if n else "w", header=not n, index=False)
                else:
                    writer = _parquet_write(writer, frame, path, table)
                n += len(frame)
        if writer is not None:
            writer.close()
        if n == 0:  # an empty table still gets a file with its columns
            empty = pd.DataFrame(columns=[c.name for c in table.columns])
            empty.to_csv(path, index=False) if fmt == "csv" else empty.to_parquet(path)
        counts[table.name] = n
    return counts


def _parquet_write(writer: Any, frame: Any, path: Path, table: Table) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise LedgerError("Parquet export needs pyarrow: pip install 'clicloop[parquet]'") from e
    schema = pa.schema([(c.name, _arrow_type(pa, c.type)) for c in table.columns])  # stable across chunks
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
