"""Issue #21, the file exchange: what a vendor with write access to the exchange folder can drop
into it. Links out of the folder are never read, a refused row is echoed as its task key and
reason (never its content), and a poisoned row is rejected while the rest of its file is taken
and the loop goes on."""

from __future__ import annotations

import json
import os
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from clicloop.backends.file_exchange import FileExchangeError
from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from tests.backends.test_file_exchange import _open, _rejected, _tasks
from tests.conftest import PURPOSE, digits_config

SECRET = "s3cr3t-db-password-hunter2"


def _secret_files(tmp_path: Path, keys: list[str]) -> list[Path]:
    """Files outside the exchange that parse as answers: a credentials file and an account list."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    creds = outside / "credentials.jsonl"
    creds.write_text("".join(json.dumps({"task_key": k, "worker": SECRET, "label": "spam", "active_s": 1,
                                         "password": SECRET}) + "\n" for k in keys))
    accounts = outside / "passwd.csv"
    accounts.write_text(f"task_key,worker,label,active_s\nroot:x:0:0:{SECRET},root,ham,1\n")
    return [creds, accounts]


def _everything_in(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_a_symlink_in_the_inbox_is_refused_unread_and_nothing_of_it_is_echoed(tmp_path: Path) -> None:
    exchange = tmp_path / "exchange"
    backend = _open(exchange)
    tasks = _tasks()
    backend.dispatch(tasks)
    creds, accounts = _secret_files(tmp_path, [t.key for t in tasks])
    inbox = exchange / "inbox"
    (inbox / "answers.jsonl").symlink_to(creds)
    (inbox / "accounts.csv").symlink_to(accounts)
    os.link(creds, inbox / "hardlinked.jsonl")  # a second name for the same outside file
    (inbox / "good.jsonl").write_text(json.dumps({"task_key": tasks[0].key, "worker": "w", "label": "ham", "active_s": 3}) + "\n")

    answers = backend.collect(tasks)

    assert [(a.task_key, a.worker) for a in answers] == [(tasks[0].key, "w")]
    for name, why in (("answers.jsonl", "symbolic link"), ("accounts.csv", "symbolic link"), ("hardlinked.jsonl", "hard link")):
        (rejection,) = _rejected(exchange, name)
        assert (rejection["line"], rejection["field"]) == (0, "<file>") and why in rejection["reason"], rejection
    assert SECRET not in _everything_in(exchange / "rejected")


def test_a_rejected_row_is_echoed_as_its_task_key_and_reason_not_its_content(tmp_path: Path) -> None:
    backend = _open(tmp_path)
    tasks = _tasks(2)
    backend.dispatch(tasks)
    lines = [json.dumps({"task_key": tasks[0].key, "worker": "w", "label": "eggs", "active_s": 1, "note": SECRET}),
             "{not json " + SECRET,
             json.dumps({"task_key": tasks[1].key, "worker": "w", "label": "ham", "active_s": 1, "currency": SECRET * 3})]
    (tmp_path / "inbox" / "batch.jsonl").write_text("\n".join(lines) + "\n")
    assert backend.collect(tasks) == []
    got = _rejected(tmp_path, "batch.jsonl")
    assert sorted((r["line"], r["field"], r["task_key"] or "") for r in got) == [
        (1, "label", tasks[0].key), (2, "<json>", ""), (3, "currency", tasks[1].key)]
    assert all(set(r) == {"file", "line", "field", "reason", "task_key"} for r in got)
    assert SECRET * 2 not in _everything_in(tmp_path / "rejected") and "note" not in _everything_in(tmp_path / "rejected")


def test_a_link_planted_where_rejections_are_written_is_replaced_not_written_through(tmp_path: Path) -> None:
    backend = _open(tmp_path / "exchange")
    tasks = _tasks(1)
    backend.dispatch(tasks)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    rejected = tmp_path / "exchange" / "rejected"
    (rejected / "bad.jsonl.rejected.jsonl").symlink_to(victim)
    (rejected / ".bad.jsonl.rejected.jsonl.tmp").symlink_to(victim)  # the temporary name clicloop once used
    (tmp_path / "exchange" / "inbox" / "bad.jsonl").write_text("{oops\n")
    backend.collect(tasks)
    assert victim.read_text() == "keep me"
    assert not (rejected / "bad.jsonl.rejected.jsonl").is_symlink()
    assert [r["field"] for r in _rejected(tmp_path / "exchange", "bad.jsonl")] == ["<json>"]


@pytest.mark.parametrize("folder", ["inbox", "rejected"])
def test_an_exchange_folder_replaced_by_a_link_elsewhere_is_refused(tmp_path: Path, folder: str) -> None:
    exchange = tmp_path / "exchange"
    backend = _open(exchange)
    tasks = _tasks(1)
    backend.dispatch(tasks)
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (elsewhere / "shadow.jsonl").write_text(json.dumps({"task_key": tasks[0].key, "worker": SECRET, "label": "ham", "active_s": 1}))
    (exchange / folder).rename(tmp_path / f"old-{folder}")
    (exchange / folder).symlink_to(elsewhere)
    with pytest.raises(FileExchangeError, match=f"{folder}.*must be a folder inside"):
        backend.collect(tasks)
    with pytest.raises(FileExchangeError, match=folder):
        _open(exchange)


def test_poisoned_rows_are_rejected_with_their_reason_and_the_valid_rows_are_taken(tmp_path: Path) -> None:
    backend = _open(tmp_path, reward=0.05)
    tasks = _tasks(6)
    backend.dispatch(tasks)
    k = [t.key for t in tasks]
    (tmp_path / "inbox" / "day.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"task_key": k[0], "worker": "w", "label": "ham", "active_s": 3, "reward": 1e13},
        {"task_key": k[1], "worker": "w", "label": "ham", "active_s": 3},
        {"task_key": k[2], "worker": "w", "label": "ham", "active_s": 1e9},
        {"task_key": k[3], "worker": "w", "label": "ham", "active_s": 3, "search_s": 1e300},
        {"task_key": k[4], "worker": "w", "label": "ham", "started_at": 0, "submitted_at": "9" * 400},
    ]))
    (tmp_path / "inbox" / "day.csv").write_text(f"task_key,worker,label,active_s,reward\n{k[5]},w,spam,2,abc\n"
                                                f"{k[5]},w,spam,2,0.07\n")
    answers = {a.task_key: a for a in backend.collect(tasks)}
    assert set(answers) == {k[1], k[5]} and answers[k[5]].reward == Decimal("0.07")
    jsonl = {r["line"]: (r["field"], r["reason"]) for r in _rejected(tmp_path, "day.jsonl")}
    assert set(jsonl) == {1, 3, 4, 5}
    assert jsonl[1][0] == "reward" and "1e+13" in jsonl[1][1] and "most one answer can be paid" in jsonl[1][1]
    assert jsonl[3][0] == "active_s" and "plausibility limit" in jsonl[3][1]
    assert jsonl[4][0] == "search_s" and "plausibility limit" in jsonl[4][1]
    assert jsonl[5][0] == "submitted_at"
    ((field, reason),) = [(r["field"], r["reason"]) for r in _rejected(tmp_path, "day.csv")]
    assert field == "reward" and "'abc'" in reason
    assert _open(tmp_path, max_active_s=2e9).collect(tasks[2:3])[0].active_s == 1e9  # the limit is a parameter
    with pytest.raises(FileExchangeError, match="max_active_s"):
        _open(tmp_path, max_active_s=float("inf"))


def test_a_poisoned_row_does_not_stop_the_loop_and_the_vendor_can_correct_it(tmp_path: Path) -> None:
    """A row paying 1e13 once raised OverflowError on every `clicloop run`, losing the valid rows
    of its file; now it is rejected, the vendor reads the reason and sends a corrected row."""
    exchange, url = tmp_path / "exchange", f"sqlite:///{tmp_path / 'ledger.db'}"
    config = config_from_dict(digits_config(
        url, stop={"max_labels": 10}, backend={"name": "file-exchange", "params": {"directory": str(exchange), "reward": 0.05}},
        loop={"name": "poison", "seed": 0, "purpose": PURPOSE, "batch_size": 5, "poll_seconds": 0.05}))
    done = threading.Event()

    def vendor() -> None:
        corrected: set[str] = set()
        while not done.is_set():
            for path in sorted((exchange / "outbox").glob("*.jsonl")) if (exchange / "outbox").exists() else []:
                target = exchange / "inbox" / f"vendor-{path.name}"
                if not target.exists():
                    rows = [json.loads(line) for line in path.read_text().splitlines()]
                    answers = [{"task_key": r["task_key"], "worker": "v", "label": r["labels"][0], "active_s": 4,
                                **({"reward": 1e13} if i == 0 else {})} for i, r in enumerate(rows)]
                    target.write_text("".join(json.dumps(a) + "\n" for a in answers))
            for path in sorted((exchange / "rejected").glob("vendor-*")):  # the vendor reads why, and corrects
                if path.name not in corrected:
                    keys = [json.loads(line)["task_key"] for line in path.read_text().splitlines()]
                    (exchange / "inbox" / f"corrected-{path.name}.jsonl").write_text(
                        "".join(json.dumps({"task_key": k, "worker": "v", "label": "0", "active_s": 4}) + "\n" for k in keys))
                    corrected.add(path.name)
            done.wait(0.05)

    thread = threading.Thread(target=vendor, daemon=True)
    thread.start()
    try:
        results = Loop(config).run()
    finally:
        done.set()
        thread.join(timeout=10)
    assert results[-1].stop_reason.startswith("label budget")
    with Ledger(url) as ledger:
        spent = ledger.spent("poison")
        assert spent["answers"] == 10 and spent["cost"] == Decimal("0.5")
        assert verify(ledger) == []
    rejections = [r for p in (exchange / "rejected").glob("vendor-*") for r in _rejected(exchange, p.name.removesuffix(".rejected.jsonl"))]
    assert len(rejections) == 2 and all(r["field"] == "reward" and "1e+13" in r["reason"] for r in rejections)
