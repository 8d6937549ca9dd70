"""Worker pseudonyms (issue #21): the ledger file alone does not reverse them (the key lives
outside it), older ledgers that kept their salt inside keep their pseudonyms, a resume with
another key is refused, and exports leave out the platforms' submission ids unless asked."""

from __future__ import annotations

import hashlib
import hmac
import logging
import stat
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from clicloop import Loop, config_from_dict
from clicloop.orchestrator.cli.main import main
from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.types import Answer, Task
from tests.conftest import digits_config

# Label Studio user ids are small integers: with the key at hand, every pseudonym falls in milliseconds
LS_USERS = [f"labelstudio-user-{i}" for i in range(2000)]


@pytest.fixture
def key_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "keys"
    monkeypatch.setenv("CLICLOOP_KEY_DIR", str(path))
    monkeypatch.delenv("CLICLOOP_WORKER_SALT", raising=False)
    return path


def _record(ledger: Ledger, workers: list[str], loop: str = "ls") -> None:
    tasks = [Task(f"{loop}/0/i{n}/0", loop, 0, f"i{n}", 0, "Sort support mail by topic for the help desk.", ("a", "b"))
             for n in range(len(workers))]
    ledger.begin_loop(loop, "h", "{}", 0)
    ledger.record_tasks(tasks, "labelstudio-ml")
    ledger.record_answers(loop, "labelstudio-ml", [
        (t, Answer(t.key, w, "a", active_s=3.0, reward=0.01, fee=0.0, currency="EUR", external_id=f"submission-{n}"), "submitted", None)
        for n, (t, w) in enumerate(zip(tasks, workers))])


def _stored(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(query)).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def _reversed(url: str) -> set[str]:
    """What an attacker holding only the ledger file recovers: every stored value tried as the key."""
    candidates = [v for (v,) in _stored(url, "select value from clicloop_meta")]
    stored = {w for (w,) in _stored(url, "select worker from assignments")}
    found = set()
    for key in candidates:
        for user in LS_USERS:
            digest = hmac.new(key.encode(), f"labelstudio-ml\x00{user}".encode(), hashlib.sha256).hexdigest()[:16]
            if digest in stored:
                found.add(user)
    return found


def test_the_ledger_file_alone_does_not_reverse_pseudonyms(tmp_path, key_dir, caplog):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with caplog.at_level(logging.WARNING, logger="clicloop"), Ledger(url) as ledger:
        _record(ledger, ["labelstudio-user-7", "labelstudio-user-12"])
    (key_file,) = key_dir.iterdir()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert [r.getMessage() for r in caplog.records if str(key_file) in r.getMessage()] != []  # the path, told once
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clicloop"), Ledger(url) as ledger:
        _record(ledger, ["labelstudio-user-7"], loop="ls2")
        assert ledger.pseudonym("labelstudio-ml", "labelstudio-user-7") == \
            hmac.new(key.encode(), b"labelstudio-ml\x00labelstudio-user-7", hashlib.sha256).hexdigest()[:16]
    assert caplog.records == []
    assert _reversed(url) == set()
    assert key.encode() not in (tmp_path / "ledger.db").read_bytes()


def test_an_older_ledger_keeps_its_pseudonyms_and_its_salt_moves_out(tmp_path, key_dir, caplog):
    """A ledger an older clicloop wrote kept a random salt in clicloop_meta: the first open moves
    it to the key file and deletes it from the ledger; the same workers keep their pseudonyms."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    old_salt = "5e1f0c3a9b7d24e68a0c1f3b5d7e9a2c"
    Ledger(url).open().close()
    engine = create_engine(url)
    with engine.begin() as conn:  # what the older clicloop left: its salt, no id or key check
        conn.execute(text("delete from clicloop_meta where key in ('ledger_id', 'key_check')"))
        conn.execute(text("insert into clicloop_meta values ('salt', :s)"), {"s": old_salt})
    engine.dispose()
    assert _stored(url, "select key from clicloop_meta where key = 'salt'") == [("salt",)]

    with caplog.at_level(logging.WARNING, logger="clicloop"), Ledger(url) as ledger:
        _record(ledger, ["labelstudio-user-3"])
        assert ledger.pseudonym("labelstudio-ml", "labelstudio-user-3") == \
            hmac.new(old_salt.encode(), b"labelstudio-ml\x00labelstudio-user-3", hashlib.sha256).hexdigest()[:16]
    assert _stored(url, "select key from clicloop_meta where key = 'salt'") == []
    (key_file,) = key_dir.iterdir()
    assert key_file.read_text().strip() == old_salt and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any("moved" in r.getMessage() and str(key_file) in r.getMessage() for r in caplog.records)
    assert old_salt.encode() not in (tmp_path / "ledger.db").read_bytes()
    assert _reversed(url) == set()


def test_a_resume_with_another_key_is_refused(tmp_path, key_dir, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "the-first-key")
    with Ledger(url) as ledger:
        _record(ledger, ["labelstudio-user-1"])
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "another-key")
    with Ledger(url) as ledger, pytest.raises(LedgerError, match="another key than \\$CLICLOOP_WORKER_SALT"):
        _record(ledger, ["labelstudio-user-1"], loop="ls2")
    monkeypatch.delenv("CLICLOOP_WORKER_SALT")
    with Ledger(url) as ledger, pytest.raises(LedgerError, match="a key that is not here.*copy its key file"):
        _record(ledger, ["labelstudio-user-1"], loop="ls3")
    assert list(key_dir.glob("*")) == []  # no new key made for a ledger whose pseudonyms exist
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "the-first-key")
    with Ledger(url) as ledger:
        _record(ledger, ["labelstudio-user-1"], loop="ls4")
        assert len({w for (w,) in _stored(url, "select worker from assignments")}) == 1


def test_exports_leave_out_submission_ids_unless_asked(tmp_path, key_dir, capsys):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 20}))).run()
    with Ledger(url) as ledger:
        _record(ledger, ["labelstudio-user-5"])
    for args, kept in (([], False), (["--include-external-ids"], True)):
        out = tmp_path / f"out-{kept}"
        main(["ledger", "export", str(out), "--ledger", url, *args])
        frame = pd.read_csv(out / "assignments.csv")
        assert ("external_id" in frame.columns) is kept and len(frame) == 21
        assert ("submission-0" in (out / "assignments.csv").read_text()) is kept
