import sqlite3
from decimal import Decimal

import pytest

from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.types import Answer, Consensus, Task


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
        assert spent["cost"] == Decimal("0.18") and isinstance(spent["cost"], Decimal)  # exact, never a float
        assert spent["active_hours"] == pytest.approx(12 / 3600)
        # qualification counted once for the one worker, searching for each answer
        assert spent["total_hours"] == pytest.approx((12 + 6 + 60) / 3600)
        votes = ledger.votes("l", round_no=0)
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


def test_a_rejection_needs_a_reason_and_can_withhold_pay(ledger_url):
    with Ledger(ledger_url) as ledger:
        ledger.begin_loop("l", "h", "{}", 0)
        tasks = [task(i) for i in range(2)]
        ledger.record_tasks(tasks, "sim")
        ledger.record_answers("l", "sim", [(t, answer(t), "submitted", None) for t in tasks])
        with pytest.raises(LedgerError, match="needs a reason"):
            ledger.review(tasks[0].key, accept=False, reason="  ")
        assert ledger.review(tasks[0].key, accept=False, reason="answered 'a' on a blank image", withhold_pay=True)
        assert not ledger.review(tasks[0].key, accept=False, reason="again", withhold_pay=True)  # once
        assert ledger.review(tasks[1].key, accept=True)
        spent = ledger.spent("l")
        assert spent["income"] == Decimal("0.05") and spent["cost"] == Decimal("0.06")
        assert [v["item_id"] for v in ledger.votes("l")] == ["item1"]  # the rejected answer no longer votes


def test_corrections_revise_labels_idempotently(ledger_url):
    from clicloop.orchestrator.crowd.aggregate import MajorityVote
    import numpy as np

    with Ledger(ledger_url) as ledger:
        ledger.begin_loop("l", "h", "{}", 0)
        t0, t1 = task(0), task(1)
        ledger.record_tasks([t0, t1], "sim")
        ledger.record_answers("l", "sim", [(t0, answer(t0, label="a"), "submitted", None), (t1, answer(t1, label="a"), "submitted", None)])
        ledger.record_labels("l", 0, [Consensus("item0", "a", 1.0, 1), Consensus("item1", "a", 1.0, 1)])
        rows = [(t0.key, "item0", "updated", "b", "2026-01-01T10:00"), (t1.key, "item1", "deleted", None, "2026-01-01T10:01")]
        assert ledger.record_corrections("l", rows) == 2
        assert ledger.record_corrections("l", rows) == 0  # a repeated webhook changes nothing
        votes = ledger.votes("l", item_ids=["item0", "item1"])
        assert votes == [{"item_id": "item0", "worker": ledger.pseudonym("sim", "w1"), "label": "b"}]
        from clicloop.orchestrator.types import Vote

        consensus = MajorityVote().aggregate([Vote(**v) for v in votes], np.random.default_rng(0))
        assert ledger.revise_labels("l", 1, consensus, withdrawn=["item1"]) == 2
        assert ledger.revise_labels("l", 1, consensus, withdrawn=["item1"]) == 0
        assert ledger.labels("l") == {"item0": "b"}


def test_wages_per_worker_count_unpaid_time(ledger_url):
    from clicloop.orchestrator.ledger.accounting import by_backend, by_worker

    with Ledger(ledger_url) as ledger:
        ledger.begin_loop("l", "h", "{}", 0)
        tasks = [task(i) for i in range(4)]
        ledger.record_tasks(tasks, "sim")
        ledger.record_answers("l", "sim", [(t, answer(t, worker=f"w{i % 2}"), "submitted", None) for i, t in enumerate(tasks)])
        ledger.review(tasks[0].key, accept=False, reason="wrong")
        workers = {r["worker"]: r for r in by_worker(ledger.engine_, "l")}
        w0 = workers[ledger.pseudonym("sim", "w0")]
        # 2 answers x 4 s active; 2 x 2 s searching + 60 s qualification unpaid; 2 x 0.05 paid
        assert w0["answers"] == 2 and w0["rejected"] == 1 and w0["rejection_rate"] == 0.5
        assert w0["wage_paid_time"] == Decimal("45.000000")  # 0.10 / (8 / 3600), to the micro-unit
        assert w0["wage_total_time"] == Decimal("5.000000")
        assert w0["unpaid_share"] == pytest.approx(64 / 72)
        (backend,) = by_backend(ledger.engine_, "l")
        assert backend["answers"] == 4 and backend["income"] == Decimal("0.20") and backend["fees"] == Decimal("0.04")


def test_a_ledger_from_a_newer_clicloop_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Ledger(url).open().close()
    with sqlite3.connect(tmp_path / "l.db") as conn:
        conn.execute("update alembic_version set version_num = '9999'")
    with pytest.raises(LedgerError, match="newer clicloop"):
        Ledger(url).open()


def test_a_labels_confidence_follows_a_pooled_aggregators_re_estimate(ledger_url):
    """Dawid-Skene moved digit-0299 from 1.0 to 0.739 (below relabel's 0.75) while the ledger kept
    1.0: a revision was written only when the label or the answer count changed."""
    with Ledger(ledger_url) as ledger:
        ledger.begin_loop("l", "h", "{}", 0)
        ledger.record_labels("l", 0, [Consensus("item1", "a", 1.0, 3), Consensus("item2", "b", 0.5, 3)])
        assert ledger.revise_labels("l", 1, [Consensus("item1", "a", 0.739, 3), Consensus("item2", "b", 0.505, 3)]) == 1
        assert ledger.label_confidence("l") == {"item1": 0.739, "item2": 0.5}  # a move within 0.01 is not a revision
        assert ledger.labels("l") == {"item1": "a", "item2": "b"}
