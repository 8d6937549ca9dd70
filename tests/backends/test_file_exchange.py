"""File exchange: export batches, import answers strictly, never crash, never count twice."""

from __future__ import annotations

import csv
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from clicloop.backends.file_exchange import FileExchange, FileExchangeError
from clicloop.orchestrator.types import BackendContext, Task

LABELS = ("spam", "ham")
PURPOSE = "Teach a model to keep unwanted e-mail out of a small charity's inbox."


def _tasks(n: int = 4, round_no: int = 0) -> list[Task]:
    return [Task(f"fx/{round_no}/m{i}/0", "fx", round_no, f"m{i}", 0, PURPOSE, LABELS, payload=f"mail {i}")
            for i in range(n)]


def _open(tmp_path: Path, **params) -> FileExchange:
    backend = FileExchange(directory=str(tmp_path), instructions="Spam = unsolicited bulk mail.", **params)
    backend.open(BackendContext("fx", LABELS, PURPOSE, 0))
    return backend


def _rejected(tmp_path: Path, name: str) -> list[dict]:
    path = tmp_path / "rejected" / f"{name}.rejected.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_dispatch_exports_one_row_per_task_with_purpose_and_instructions_once(tmp_path: Path) -> None:
    backend = _open(tmp_path)
    tasks = _tasks()
    backend.dispatch(tasks)
    (path,) = sorted((tmp_path / "outbox").iterdir())
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["task_key"] for r in rows] == [t.key for t in tasks]
    assert all(r["purpose"] == PURPOSE and r["instructions"] and r["labels"] == list(LABELS) for r in rows)
    before = path.stat().st_mtime_ns
    backend.dispatch(tasks)
    _open(tmp_path).dispatch(list(reversed(tasks)))  # another process, same tasks
    assert sorted((tmp_path / "outbox").iterdir()) == [path] and path.stat().st_mtime_ns == before
    _open(tmp_path).dispatch(tasks + _tasks(6)[4:])
    files = sorted((tmp_path / "outbox").iterdir())
    assert sorted(len(f.read_text().splitlines()) for f in files) == [2, 4]  # only the new tasks


def test_csv_export_round_trips_labels_and_payload(tmp_path: Path) -> None:
    backend = _open(tmp_path, format="csv")
    backend.dispatch(_tasks(2))
    (path,) = (tmp_path / "outbox").iterdir()
    rows = list(csv.DictReader(path.open(newline="")))
    assert path.suffix == ".csv" and json.loads(rows[0]["labels"]) == list(LABELS) and json.loads(rows[1]["payload"]) == "mail 1"
    with pytest.raises(FileExchangeError, match="format"):
        _open(tmp_path, format="xlsx")


def test_a_csv_outbox_cell_a_spreadsheet_would_run_is_written_inert(tmp_path: Path) -> None:
    """Found 2026-12-06: item ids such as ``=cmd|' /C calc'!A1`` went into the CSV outbox as they
    were, a formula for the vendor's spreadsheet; the answer key is unchanged."""
    backend = FileExchange(directory=str(tmp_path), instructions="=HYPERLINK(\"http://evil.example\")", format="csv")
    backend.open(BackendContext("fx", LABELS, PURPOSE, 0))
    task = Task("fx/0/x/0", "fx", 0, "=cmd|' /C calc'!A1", 0, PURPOSE, LABELS, payload="=1+1")
    backend.dispatch([task, *_tasks(1)])
    (path,) = (tmp_path / "outbox").iterdir()
    rows = {r["task_key"]: r for r in csv.DictReader(path.open(newline=""))}
    hostile, plain = rows["fx/0/x/0"], rows["fx/0/m0/0"]
    assert hostile["item_id"] == "'=cmd|' /C calc'!A1" and hostile["instructions"].startswith("'=HYPERLINK")
    assert json.loads(hostile["payload"]) == "=1+1" and plain["item_id"] == "m0"


def test_valid_answers_are_imported_with_their_times_and_pay(tmp_path: Path) -> None:
    backend = _open(tmp_path, reward=0.04, fee_rate=0.25, currency="EUR")
    tasks = _tasks()
    backend.dispatch(tasks)
    (tmp_path / "inbox" / "day1.csv").write_text(
        "task_key,worker,label,started_at,submitted_at,reward\n"
        f"{tasks[0].key},anna,spam,2026-03-02T10:00:00Z,2026-03-02T10:00:12.5Z,\n"
        f"{tasks[1].key},ben,,1772445600,1772445607,0.10\n"
    )
    (tmp_path / "inbox" / "day2.jsonl").write_text(json.dumps(
        {"task_key": tasks[2].key, "worker": "anna", "label": "ham", "active_s": 9, "search_s": 4}) + "\n")
    answers = {a.task_key: a for a in backend.collect(tasks)}
    assert set(answers) == {t.key for t in tasks[:3]}
    a0, a1, a2 = (answers[t.key] for t in tasks[:3])
    assert (a0.worker, a0.label, a0.active_s, a0.reward, a0.fee) == ("anna", "spam", 12.5, Decimal("0.04"), Decimal("0.01"))
    assert a1.label is None and a1.active_s == 7 and a1.reward == Decimal("0.10")  # empty label: a skip
    assert (a2.active_s, a2.search_s, a2.currency) == (9, 4, "EUR")
    assert backend.collect(tasks[:1]) == [a0]  # only the tasks asked for


def test_malformed_rows_are_skipped_reported_and_kept_never_crash(tmp_path: Path, caplog) -> None:
    backend = _open(tmp_path)
    tasks = _tasks()
    backend.dispatch(tasks)
    k = [t.key for t in tasks]
    lines = [
        json.dumps({"task_key": k[0], "worker": "w1", "label": "spam", "active_s": 5}),
        "{not json",
        json.dumps({"task_key": "fx/0/nope/0", "worker": "w1", "label": "spam", "active_s": 5}),
        json.dumps({"task_key": k[1], "worker": "w1", "label": "eggs", "active_s": 5}),
        json.dumps({"task_key": k[1], "worker": "w1", "label": "ham", "active_s": -3}),
        json.dumps({"task_key": k[2], "label": "ham", "active_s": 3}),
        json.dumps({"task_key": k[2], "worker": "w2", "label": "ham",
                    "started_at": "2026-03-02T10:00:10", "submitted_at": "2026-03-02T10:00:00"}),
        json.dumps({"task_key": k[3], "worker": "w2", "label": "ham", "active_s": 3, "currency": "USD"}),
        json.dumps({"task_key": k[3], "worker": "w2", "label": "ham"}),
        json.dumps(["a", "list"]),
        json.dumps({"task_key": k[3], "worker": "w2", "label": "ham", "active_s": "NaN"}),
    ]
    (tmp_path / "inbox" / "batch.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "inbox" / "extra.csv").write_text(f"task_key,worker,label,active_s\n{k[2]},w3,ham,4,surplus\n")
    answers = backend.collect(tasks)
    assert [a.task_key for a in answers] == [k[0]]
    got = [(r["line"], r["field"]) for r in _rejected(tmp_path, "batch.jsonl")]
    assert got == [(2, "<json>"), (3, "task_key"), (4, "label"), (5, "active_s"), (6, "worker"), (7, "submitted_at"),
                   (8, "currency"), (9, "active_s"), (10, "<row>"), (11, "active_s")]
    assert [(r["file"], r["line"], r["field"]) for r in _rejected(tmp_path, "extra.csv")] == [("extra.csv", 2, "<row>")]
    assert "batch.jsonl line 4, field label" in caplog.text
    backend.collect(tasks)
    assert len(_rejected(tmp_path, "batch.jsonl")) == 10  # rewritten, never appended twice
    assert caplog.text.count("batch.jsonl line 4, field label") == 1


def test_the_same_file_imported_twice_counts_once_and_a_contradiction_is_rejected(tmp_path: Path) -> None:
    backend = _open(tmp_path)
    tasks = _tasks(2)
    backend.dispatch(tasks)
    inbox = tmp_path / "inbox"
    (inbox / "a.jsonl").write_text("".join(json.dumps({"task_key": t.key, "worker": "w", "label": "ham", "active_s": 2}) + "\n"
                                           for t in tasks))
    shutil.copy(inbox / "a.jsonl", inbox / "a-again.jsonl")
    (inbox / "b.jsonl").write_text(json.dumps({"task_key": tasks[0].key, "worker": "x", "label": "spam", "active_s": 2}) + "\n")
    for n, name in enumerate(("a.jsonl", "a-again.jsonl", "b.jsonl")):  # arrival order
        os.utime(inbox / name, ns=(1_000_000_000 * (n + 1),) * 2)
    answers = backend.collect(tasks)
    assert len(answers) == 2 and all(a.worker == "w" for a in answers)
    assert _rejected(tmp_path, "a-again.jsonl") == []
    (conflict,) = _rejected(tmp_path, "b.jsonl")
    assert conflict["field"] == "task_key" and "a.jsonl line 1" in conflict["reason"]


def test_the_answer_kept_is_the_first_to_arrive_not_the_first_file_name(tmp_path: Path) -> None:
    """z.jsonl's answer was recorded; a.jsonl, arriving later with another label, was then read
    first (by name): rejected/ blamed z.jsonl, whose answer the ledger held, and a.jsonl's went
    unreported."""
    backend = _open(tmp_path)
    tasks = _tasks(1)
    backend.dispatch(tasks)
    inbox = tmp_path / "inbox"
    (inbox / "z.jsonl").write_text(json.dumps({"task_key": tasks[0].key, "worker": "w", "label": "ham", "active_s": 2}) + "\n")
    os.utime(inbox / "z.jsonl", ns=(1_000_000_000,) * 2)
    assert [a.label for a in backend.collect(tasks)] == ["ham"]
    (inbox / "a.jsonl").write_text(json.dumps({"task_key": tasks[0].key, "worker": "x", "label": "spam", "active_s": 2}) + "\n")
    for reader in (backend, _open(tmp_path)):  # the same process, and after a restart
        assert [a.label for a in reader.collect(tasks)] == ["ham"]
        assert _rejected(tmp_path, "z.jsonl") == []
        (conflict,) = _rejected(tmp_path, "a.jsonl")
        assert "z.jsonl line 1" in conflict["reason"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_row_still_being_written_waits_for_its_newline(tmp_path: Path, suffix: str) -> None:
    """A CSV row cut mid-number (active_s "12" of "120") was accepted at 12 s, the completed row
    then dropped as a repeat: ten times too little time, ten times the wage."""
    backend = _open(tmp_path)
    tasks = _tasks(1)
    backend.dispatch(tasks)
    path = tmp_path / "inbox" / f"p{suffix}"
    head, rest = ((f"task_key,worker,label,active_s\n{tasks[0].key},w,ham,12", "0\n") if suffix == ".csv" else
                  (json.dumps({"task_key": tasks[0].key, "worker": "w", "label": "ham", "active_s": 120})[:-2], "0}\n"))
    path.write_text(head)
    assert backend.collect(tasks) == []
    (waiting,) = _rejected(tmp_path, path.name)
    assert waiting["field"] == "<line>" and waiting["line"] == (2 if suffix == ".csv" else 1) and "waits" in waiting["reason"]
    with path.open("a") as f:
        f.write(rest)
    assert [a.active_s for a in backend.collect(tasks)] == [120.0]
    assert _rejected(tmp_path, path.name) == []


def test_answers_survive_a_restart_and_confidential_is_a_parameter(tmp_path: Path) -> None:
    tasks = _tasks(1)
    _open(tmp_path).dispatch(tasks)
    (tmp_path / "inbox" / "a.jsonl").write_text(json.dumps({"task_key": tasks[0].key, "worker": "w", "label": "ham",
                                                            "active_s": 1}) + "\n")
    fresh = _open(tmp_path, confidential=True)
    assert [a.label for a in fresh.collect(tasks)] == ["ham"]  # keys known from the outbox on disk
    assert fresh.confidential is True and FileExchange().confidential is False


def test_the_expected_cost_of_a_task_is_exact_money() -> None:
    """reward + fee as a row without pay would book it, a Decimal (it was the float 0.30000000000000004)."""
    backend = FileExchange(directory="unused", reward=0.1, fee_rate=2.0)
    assert backend.expected_cost_per_task() == Decimal("0.3")
    assert isinstance(backend.expected_cost_per_task(), Decimal)
    assert FileExchange(directory="unused").expected_cost_per_task() is None  # the vendor's rows name their pay


def test_after_a_restart_the_first_answer_is_still_the_one_reported_first(tmp_path: Path) -> None:
    """Found 2026-12-07: bad.jsonl line 1 was reported (and recorded), late.jsonl's contradiction
    rejected; then the vendor appended to bad.jsonl, which made it the newer file, and after a
    restart rejected/ blamed bad.jsonl lines 1-3 ("already answered differently in late.jsonl"),
    the opposite of what the ledger held, an identical repeat rejected with them."""
    backend = _open(tmp_path)
    tasks = _tasks(2)
    backend.dispatch(tasks)
    inbox = tmp_path / "inbox"

    def row(task: Task, label: str, worker: str = "w") -> str:
        return json.dumps({"task_key": task.key, "worker": worker, "label": label, "active_s": 2}) + "\n"

    (inbox / "bad.jsonl").write_text(row(tasks[0], "ham"))
    os.utime(inbox / "bad.jsonl", ns=(1_000_000_000,) * 2)
    assert [a.label for a in backend.collect(tasks)] == ["ham"]
    (inbox / "late.jsonl").write_text(row(tasks[1], "spam") + row(tasks[0], "spam", "x"))
    os.utime(inbox / "late.jsonl", ns=(2_000_000_000,) * 2)
    backend.collect(tasks)
    with (inbox / "bad.jsonl").open("a") as f:  # the vendor appends: bad.jsonl is now the newer file
        f.write(row(tasks[0], "ham") + row(tasks[1], "spam"))
    for reader in (_open(tmp_path), _open(tmp_path)):  # restarted, twice
        answers = {a.task_key: (a.label, a.worker) for a in reader.collect(tasks)}
        assert answers == {tasks[0].key: ("ham", "w"), tasks[1].key: ("spam", "w")}
        assert _rejected(tmp_path, "bad.jsonl") == []  # its repeats count once, nothing blamed on it
        (conflict,) = _rejected(tmp_path, "late.jsonl")
        assert conflict["line"] == 2 and "bad.jsonl line 1" in conflict["reason"]


def test_a_loop_started_over_decides_first_answers_by_arrival_again(tmp_path: Path) -> None:
    backend = _open(tmp_path)
    tasks = _tasks(1)
    backend.dispatch(tasks)
    (tmp_path / "inbox" / "a.jsonl").write_text(json.dumps({"task_key": tasks[0].key, "worker": "w", "label": "ham",
                                                            "active_s": 2}) + "\n")
    backend.collect(tasks)
    assert (tmp_path / ".clicloop-first-answers-fx.jsonl").exists()
    other = FileExchange(directory=str(tmp_path))  # another loop sharing the directory starts over: not this loop's
    other.open(BackendContext("other", LABELS, PURPOSE, 0, restart=True))
    assert (tmp_path / ".clicloop-first-answers-fx.jsonl").exists()
    again = FileExchange(directory=str(tmp_path))
    again.open(BackendContext("fx", LABELS, PURPOSE, 0, restart=True))
    assert not (tmp_path / ".clicloop-first-answers-fx.jsonl").exists()


def test_a_torn_last_line_of_the_firsts_file_loses_only_itself(tmp_path: Path) -> None:
    """Found 2026-12-07 (review): the next record was appended onto a torn line and lost with it."""
    backend = _open(tmp_path)
    tasks = _tasks(2)
    backend.dispatch(tasks)
    firsts = tmp_path / ".clicloop-first-answers-fx.jsonl"
    firsts.write_text('{"task_key": "fx/0/m9/0", "fi')
    (tmp_path / "inbox" / "a.jsonl").write_text(json.dumps({"task_key": tasks[0].key, "worker": "w", "label": "ham",
                                                            "active_s": 2}) + "\n")
    backend.collect(tasks)
    assert _open(tmp_path).firsts_ == {tasks[0].key: ("a.jsonl", 1)}


def test_a_restarted_backend_says_where_the_work_is_though_nothing_new_is_exported(tmp_path: Path, caplog) -> None:
    """Found 2026-12-07 (review): the notice came with an export only, so a resumed run, whose
    tasks were exported before, waited in silence."""
    import logging

    tasks = _tasks(3)
    _open(tmp_path).dispatch(tasks)
    (outbox,) = (tmp_path / "outbox").iterdir()
    caplog.set_level(logging.INFO, logger="clicloop.orchestrator.progress")
    caplog.clear()  # the first backend's own notice (said when the logger was at INFO already)
    restarted = _open(tmp_path)
    restarted.dispatch(tasks)
    restarted.dispatch(tasks)
    said = [r.getMessage() for r in caplog.records if r.name == "clicloop.orchestrator.progress"]
    assert len(said) == 1 and f"3 task(s) out in {tmp_path / 'outbox'} (the newest file: {outbox.name})" in said[0], said
    assert sorted((tmp_path / "outbox").iterdir()) == [outbox]  # nothing exported again
