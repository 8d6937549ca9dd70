import sqlite3

import pytest

from orchestrator.errors import LedgerError
from orchestrator.ledger import Ledger
from orchestrator.types import Answer, Consensus, Task


def task(i: int, round_no: int = 0) -> Task:
    return Task(f"l/{round_no}/item{i}/0", "l", round_no, f"item{i}", 0, "Sort tickets by topic.", ("a", "b"))


def answer(t: Task, worker: str = "w1", label: str = "a") -> Answer:
    return Answer(t.key, worker, label, active_s=4.0, reward=0.05, fee=0.01, currency="EUR", search_s=2.0, qualification_s=60.0)


def test_answers_are_recorded_once_and_workers_are_pseudonyms(ledger_url):
    with Ledger(ledger_url) as ledger:
        ledger.begin_loop("l", "h", "{}", 0)
        tasks = [task(i) for i in range(3)]
        ledger.record_tasks(tasks, "sim")
        rows = [(t, answer(t), "submitted", None) for t in tasks]
        assert ledger.record_answers("l", "sim", rows) == [0, 1, 2]
        assert ledger.record_answers("l", "sim", rows + rows) == []  # a resume re-collects: nothing new
        spent = ledger.spent("l")
        assert spent["answers"] == 3
        assert spent["cost"] == pytest.approx(3 * 0.06)
        assert spent["active_hours"] == pytest.approx(12 / 3600)
        # qualification counted once for the one worker, searching for each answer
        assert spent["total_hours"] == pytest.approx((12 + 6 + 60) / 3600)
        votes = ledger.votes("l", 0)
        assert {v["worker"] for v in votes} == {ledger.pseudonym("sim", "w1")}
        assert "w1" not in {v["worker"] for v in votes}


def test_labels_and_rounds_round_trip(ledger_url):
    with Ledger(ledger_url) as ledger:
        ledger.begin_loop("l", "h", "{}", 0)
        ledger.start_round("l", 0, "l-r0", 20, "accuracy", 0.5)
        ledger.start_round("l", 0, "l-r0", 99, "accuracy", 0.9)  # a resumed round keeps its first record
        ledger.record_labels("l", 0, [Consensus("item1", "a", 1.0, 1)])
        ledger.finish_round("l", 0)
        assert ledger.labels("l") == {"item1": "a"}
        (row,) = ledger.rounds("l")
        assert (row["n_labeled"], row["metric"], row["status"]) == (20, 0.5, "finished")


def test_a_loop_resumed_with_another_config_is_refused(ledger_url):
    with Ledger(ledger_url) as ledger:
        assert ledger.begin_loop("l", "h1", "{}", 0) is True
        assert ledger.begin_loop("l", "h1", "{}", 0) is False
        with pytest.raises(LedgerError, match="different config.*--restart"):
            ledger.begin_loop("l", "h2", "{}", 0)


def test_a_corrupt_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="not a usable database.*untouched"):
        Ledger(f"sqlite:///{path}").open()
    assert path.read_bytes() == before


def test_a_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table customers (id integer)")
    with pytest.raises(LedgerError, match="not a clicloop ledger.*customers"):
        Ledger(f"sqlite:///{path}").open()
    with sqlite3.connect(path) as conn:
        assert conn.execute("select name from sqlite_master").fetchall() == [("customers",)]
