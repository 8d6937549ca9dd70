"""`clicloop ledger export` on a ledger from an earlier schema (read-only: never migrated) writes
every table it knows, the ones the ledger predates as empty files with their columns (found
2026-12-04: the export stopped at "no such table: cont_versions")."""

from __future__ import annotations

import pandas as pd

from clicloop.orchestrator.ledger.export import export
from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
from tests.orchestrator.reporting.test_report_older_ledger import ledger_before_0006


def test_tables_the_ledger_predates_export_empty(tmp_path) -> None:
    old = ReadOnlyLedger(ledger_before_0006(tmp_path)).open()
    try:
        counts = export(old, tmp_path / "out")
    finally:
        old.close()
    assert counts["assignments"] == 60 and counts["cont_versions"] == 0
    empty = pd.read_csv(tmp_path / "out" / "cont_versions.csv")
    assert empty.empty and "answers_seen" in empty.columns
