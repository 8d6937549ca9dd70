"""A ledger written by an earlier clicloop (schema before 0006: no continuous-mode tables) still
reports through the read-only commands, which never migrate (found 2026-12-04: `clicloop report`
on a quickstart ledger of the day before the continuous mode crashed with "no such table:
cont_answers")."""

from __future__ import annotations

import sqlite3

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
from clicloop.orchestrator.reporting.report import build_report
from tests.orchestrator.reporting.test_report_money import _loop


def ledger_before_0006(tmp_path) -> str:
    """A ledger with one loop, as schema 0005 left it (no continuous-mode tables); its URL."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    ledger = Ledger(url).open()
    try:
        _loop(ledger)
    finally:
        ledger.close()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("DROP TABLE eval_sizes")  # migration 0007
        conn.execute("DROP TABLE cont_waits")  # migration 0008
        conn.execute("DROP TABLE cont_answers")
        conn.execute("DROP TABLE cont_versions")
        conn.execute("UPDATE alembic_version SET version_num = '0005'")
    return url


def test_a_ledger_from_before_the_continuous_tables_reports(tmp_path) -> None:
    url = ledger_before_0006(tmp_path)
    old = ReadOnlyLedger(url).open()
    try:
        rows, totals = build_report(old, "l")
    finally:
        old.close()
    assert len(rows) == 6 and totals.answers == 60
    assert totals.staleness_mean is None and totals.waiting_hours == 0.0


def ledger_before_0007(tmp_path) -> str:
    """A ledger as schema 0006 left it (no ``eval_sizes``), with one loop whose rounds were
    measured; its URL."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    ledger = Ledger(url).open()
    try:
        _loop(ledger, n_eval=200)
    finally:
        ledger.close()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("DROP TABLE eval_sizes")
        conn.execute("UPDATE alembic_version SET version_num = '0006'")
    return url


def test_a_ledger_from_before_eval_sizes_reports_without_the_interval(tmp_path) -> None:
    from clicloop.orchestrator.dashboard import queries
    from clicloop.orchestrator.dashboard.source import Filters
    from clicloop.orchestrator.reporting.reach import default_targets, reach_table

    old = ReadOnlyLedger(ledger_before_0007(tmp_path)).open()
    try:
        rows, _ = build_report(old, "l")
        dashboard_rounds = queries.rounds(old.engine_, queries.resolve(old.engine_, Filters()))
    finally:
        old.close()
    assert len(rows) == 6 and all(r.n_eval is None for r in rows)
    assert len(dashboard_rounds) == 6 and all(r["n_eval"] is None for r in dashboard_rounds)
    reached = [x for x in reach_table(rows, default_targets(rows)) if x.round_no is not None]
    assert reached and all(x.labels_low is None and x.labels_high is None for x in reached)
