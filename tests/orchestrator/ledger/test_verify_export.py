import sqlite3

import pytest

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.export import export
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from tests.conftest import digits_config


@pytest.fixture
def ledger_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 30}))).run()
    return tmp_path / "l.db", url


def test_a_sound_ledger_verifies_and_tampering_is_caught(ledger_db):
    path, url = ledger_db
    with Ledger(url) as ledger:
        assert verify(ledger) == []
    with sqlite3.connect(path) as conn:
        conn.execute("insert into payments select key || '/again', loop, round_no, backend, worker, task_key, kind, "
                     "amount_micros, currency, reason, recorded_at from payments where kind = 'reward' limit 1")
        conn.execute("insert into reviews values ('t/0/x/0', 't', 'reject', '', 'me', 0)")
    with Ledger(url) as ledger:
        failed = {v.check for v in verify(ledger)}
    assert any("paid twice" in c for c in failed) and any("reason" in c for c in failed)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_every_table_but_the_salt(ledger_db, tmp_path, fmt):
    import pandas as pd

    _, url = ledger_db
    with Ledger(url) as ledger:
        counts = export(ledger, tmp_path / "out", fmt)
    assert "clicloop_meta" not in counts and counts["assignments"] == 30 and counts["payments"] == 60
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    frame = read(tmp_path / "out" / f"assignments.{fmt}")
    assert len(frame) == 30 and frame["worker"].str.len().eq(16).all()
    assert read(tmp_path / "out" / f"reviews.{fmt}").empty
