"""A continuous loop killed at each of its commit boundaries, mid-run, then resumed: no label lost,
nobody paid twice, a sound ledger, and the same ledger as a run that was never interrupted.

The kills are ``os._exit(9)`` the third time the loop passes a named boundary (``waits``, passed
once when the loop stops: the first time) (``CLICLOOP_FAULT_AT`` / ``CLICLOOP_FAULT_COUNT``, see
:func:`clicloop.orchestrator.continuous.fault`);
the discrete-event crowd keeps its state in a file (``state_path``), as a real crowd keeps working
while the loop is down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clicloop.orchestrator.continuous import BOUNDARIES, COUNT_ENV
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.postdeploy.faults import FAULT_ENV, FAULT_EXIT
from tests.conftest import digits_config
from tests.orchestrator.test_continuous import dump

ROOT = Path(__file__).resolve().parents[2]
RUN = ("import json, sys; from clicloop.orchestrator.config import config_from_dict; "
       "from clicloop.orchestrator.loop import Loop; Loop(config_from_dict(json.loads(sys.argv[1]))).run()")


def run(folder: Path, fault: str | None = None, count: str | None = None, priced: bool = False,
        budget: bool = False) -> subprocess.CompletedProcess:
    """``budget``: stopped by its label budget (60 answers, 10 people), not by ``max_rounds``."""
    stop = {"max_labels": 60} if budget else {"max_labels": 200, "max_rounds": 5}  # max_rounds first: people still there wait until the stop
    crowd = {"compute_s": 2.0, "state_path": str(folder / "crowd.pkl"), **({"n_workers": 10} if budget else {})}
    raw = digits_config(f"sqlite:///{folder / 'ledger.db'}", loop={"mode": "continuous", "refit_every": 10},
                        stop=stop, backend={"name": "event-crowd", "params": crowd},
                        **({"wage_floor": {"amount": 12.02, "currency": "EUR", "price_rewards": True}} if priced else {}))
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, COUNT_ENV)}
    env["CLICLOOP_WORKER_SALT"] = "fixed-salt-for-crash-tests"
    if fault is not None:
        env[FAULT_ENV], env[COUNT_ENV] = fault, count or ("1" if fault == "waits" else "3")
    return subprocess.run([sys.executable, "-c", RUN, json.dumps(raw)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("whole")
    done = run(folder)
    assert done.returncode == 0, done.stderr[-2000:]
    out = dump(folder / "ledger.db")
    assert out["cont_waits"]  # the waiting after the last answers is recorded (20 workers all present)
    assert 40 <= len(out["assignments"]) < 100  # stopped by max_rounds, with the budget not fully asked
    return out


@pytest.mark.parametrize("boundary, count", [(b, None) for b in BOUNDARIES] + [("answers", "11"), ("tasks", "11")])
def test_killed_mid_run_and_resumed_the_ledger_is_whole_and_the_same(tmp_path, boundary, count, uninterrupted):
    """``count`` None: the third pass (``waits``: the first); the extra cases die while the second
    version is fitted in the background (answers and top-ups from the first version's ranking)."""
    killed = run(tmp_path, boundary, count)
    assert killed.returncode == FAULT_EXIT, killed.stderr[-2000:]
    n = len(uninterrupted["assignments"])
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        if boundary == "waits":  # it died as it stopped: the waiting after the last answers recorded, the stop not
            assert ledger.rounds("t")[-1]["status"] != "finished" and ledger.spent("t")["answers"] == n
        else:
            assert ledger.spent("t")["answers"] < n  # it died mid-run
    resumed = run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        assert verify(ledger) == []
        assert ledger.spent("t")["answers"] == n and len(ledger.labels("t")) == n
    assert dump(tmp_path / "ledger.db") == uninterrupted  # cont_waits included: the last waiting recorded once


@pytest.fixture(scope="module")
def uninterrupted_priced(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("whole-priced")
    done = run(folder, priced=True)
    assert done.returncode == 0, done.stderr[-2000:]
    import sqlite3

    with sqlite3.connect(folder / "ledger.db") as conn:
        assert conn.execute("select count(distinct reward_micros) from tasks").fetchone()[0] > 2  # priced, repriced
    return dump(folder / "ledger.db")


@pytest.mark.parametrize("boundary", ["answers", "version"])
def test_a_resumed_version_offers_the_reward_it_offered_before_the_kill(tmp_path, boundary, uninterrupted_priced):
    """With ``wage_floor.price_rewards`` a resumed version priced its tasks from the ledger as it
    stood at the resume (0.076 EUR a task where the uninterrupted run offered 0.05): the ledger
    differed from the uninterrupted run's. Each version records its price (migration 0011)."""
    killed = run(tmp_path, boundary, priced=True)
    assert killed.returncode == FAULT_EXIT, killed.stderr[-2000:]
    resumed = run(tmp_path, priced=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        assert verify(ledger) == []
    assert dump(tmp_path / "ledger.db") == uninterrupted_priced


def test_killed_just_after_the_budgets_last_answer_the_last_version_is_still_fitted_on_every_label(tmp_path):
    """Found 2026-12-07: a resumed version re-decided its stop on every answer in the ledger,
    those recorded after it was first put in use too: killed just after the budget's last answer,
    the resumed loop stopped one version early (79 labels, not 80), the last answers in no version."""
    whole, killed_dir = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed_dir.mkdir()
    done = run(whole, budget=True)
    assert done.returncode == 0, done.stderr[-2000:]
    killed = run(killed_dir, "answers", "60", budget=True)  # the pass that records the 60th answer
    assert killed.returncode == FAULT_EXIT, killed.stderr[-2000:]
    resumed = run(killed_dir, budget=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    reference = dump(whole / "ledger.db")
    with Ledger(f"sqlite:///{whole / 'ledger.db'}") as ledger:
        last = ledger.rounds("t")[-1]
        assert last["stop_reason"].startswith("label budget spent") and last["n_labeled"] == 80
    with Ledger(f"sqlite:///{killed_dir / 'ledger.db'}") as ledger:
        assert verify(ledger) == []
    assert dump(killed_dir / "ledger.db") == reference
