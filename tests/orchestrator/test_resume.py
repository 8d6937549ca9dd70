"""Kill `clicloop run` with SIGKILL at many points, resume, and compare the ledger with an
uninterrupted run: no answer lost, no task dispatched or paid twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import digits_config
from tests.orchestrator.test_loop import dump

KILLER = '''
"""Test plugin: SIGKILLs its own process at the N-th call of a chosen hook."""
import os, signal
from clicloop.orchestrator.hookspecs import hookimpl

HOOK, N = os.environ["KILL_AT"].rsplit(":", 1)
calls = 0

def _maybe_die(name):
    global calls
    if name == HOOK:
        calls += 1
        if calls == int(N):
            os.kill(os.getpid(), signal.SIGKILL)

@hookimpl
def clicloop_round_started(loop, round_no):
    _maybe_die("round_started")

@hookimpl
def clicloop_tasks_dispatched(loop, round_no, tasks):
    _maybe_die("tasks_dispatched")

@hookimpl
def clicloop_annotation_received(loop, answer, status):
    _maybe_die("annotation_received")

@hookimpl
def clicloop_round_finished(loop, result):
    _maybe_die("round_finished")
'''

# (hook, call number): before selection, after dispatch, in the middle of a batch of answers,
# after a round is committed, and late in the loop.
KILL_POINTS = ["round_started:2", "tasks_dispatched:1", "annotation_received:13", "round_finished:3",
               "annotation_received:41", "tasks_dispatched:6"]


def write_config(tmp_path: Path, db: str) -> Path:
    cfg = digits_config(f"sqlite:///{tmp_path / db}", loop={"redundancy": 2, "batch_size": 5}, stop={"max_labels": 60},
                        plugins=["killer_plugin"])
    path = tmp_path / f"{db}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def clicloop(config: Path, tmp_path: Path, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "CLICLOOP_WORKER_SALT": "resume-test", "KILL_AT": kill_at or "never:0"}
    return subprocess.run([sys.executable, "-m", "clicloop", "run", str(config)], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_sigkill_at_any_point_then_resume_loses_nothing_and_pays_no_one_twice(tmp_path):
    (tmp_path / "killer_plugin.py").write_text(textwrap.dedent(KILLER))
    clean = clicloop(write_config(tmp_path, "clean.db"), tmp_path, None)
    assert clean.returncode == 0, clean.stderr
    expected = dump(tmp_path / "clean.db")
    assert len(expected["assignments"]) == 60

    for i, point in enumerate(KILL_POINTS):
        config = write_config(tmp_path, f"killed{i}.db")
        killed = clicloop(config, tmp_path, point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        resumed = clicloop(config, tmp_path, None)
        assert resumed.returncode == 0, (point, resumed.stderr)
        got = dump(tmp_path / f"killed{i}.db")
        assert got == expected, f"ledger differs after a kill at {point}"
        with sqlite3.connect(tmp_path / f"killed{i}.db") as conn:
            assert conn.execute("select count(*), count(distinct task_key) from assignments").fetchone() == (60, 60)
            # each answer paid exactly once: one reward and one fee per task key
            assert conn.execute("select count(*), count(distinct key) from payments").fetchone() == (120, 120)


def test_a_resume_without_the_earlier_runs_cache_says_its_ledger_will_differ(tmp_path, monkeypatch, caplog):
    """Found 2026-12-06: resumed with an empty cache folder (another machine, a cleared cache), a
    loop fitted afresh and recorded another ledger than an uninterrupted run, without a word."""
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.loop import Loop
    from tests.conftest import digits_config

    url = f"sqlite:///{tmp_path / 'l.db'}"
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache-a"))
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 30}))).run()
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 40}))).run()  # the same folder: nothing to say
    assert "no saved fits" not in caplog.text
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache-b"))
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 50}))).run()
    assert "t: resuming with no saved fits from the earlier run in the cache folder" in caplog.text
    assert "will differ from an uninterrupted run's (nothing is lost or paid twice)" in caplog.text


def test_a_model_that_cannot_warm_start_leaves_a_resume_nothing_to_miss(tmp_path):
    """Found 2026-12-07 in review: with a model that keeps no fits (no ``warm_start``: naive Bayes,
    a forest, a plugin's), the cache folder stayed empty by design and every resume warned that
    its ledger would differ."""
    from sklearn.datasets import load_digits
    from sklearn.naive_bayes import GaussianNB

    from clicloop.orchestrator.training.warmstate import QueryFits

    X, y = load_digits(return_X_y=True)
    fits = QueryFits(tmp_path / "fits")
    fits.record("k1", GaussianNB().fit(X[:50], y[:50]))
    assert QueryFits(tmp_path / "fits").saved()  # the next process: nothing was lost
    assert not QueryFits(tmp_path / "elsewhere").saved()
