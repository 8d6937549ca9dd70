"""``deploy review`` killed at each commit boundary of the review path (issue #21): the resumed
review ends with every answered review task holding exactly one verdict and one label, nobody
paid twice, the same answers, pay and verdicts as a run that was never interrupted, and a sound
ledger. ``ledger verify`` names an answer left without its verdict (a ledger broken by hand, as a
crash left it before answers and verdicts were written together), and a resumed review rebuilds it.

The kills are ``os._exit(9)`` at a named boundary (``CLICLOOP_FAULT_AT``, see
:mod:`clicloop.orchestrator.postdeploy.faults`): a random SIGKILL rarely lands between two commits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.postdeploy import DeploymentStore, ingest
from clicloop.orchestrator.postdeploy.faults import FAULT_ENV, FAULT_EXIT, REVIEW_BOUNDARIES
from clicloop.orchestrator.postdeploy.triage import Triage, build_policy
from tests.orchestrator.postdeploy.synth import INTENTS, utterances

ROOT = Path(__file__).resolve().parents[2]
START = 1_767_225_600.0  # 2026-01-01 UTC
POLICY = {"any": [{"name": "low-confidence", "params": {"threshold": 0.6}}, {"name": "random-audit", "params": {"rate": 0.2}}]}
LOOP = "bot:review"


def deployment(url: str, folder: Path, n: int = 80) -> None:
    """A deployment ``bot`` with ``n`` predictions triaged (a few dozen selected) and a truth file."""
    rng = np.random.default_rng(21)
    names = sorted(INTENTS)
    pairs = utterances(n, seed=21)
    recs = [{"id": f"p{i}", "model_version": "v1", "text": text, "confidence": float(rng.uniform(0.3, 1.0)), "time": START + 60 * i,
             "predicted_label": names[int(rng.integers(len(names)))] if rng.random() < 0.3 else label}
            for i, (text, label) in enumerate(pairs)]
    with Ledger(url) as ledger:
        store = DeploymentStore(ledger, "bot")
        store.register_version("v1", names)
        store.record_promotion("deploy", "v1")
        assert ingest(ledger, "bot", recs).accepted == n
        assert Triage(store, "default", build_policy(POLICY)).run().selected > 20
    (folder / "truth.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "label": y}) + "\n" for i, (_, y) in enumerate(pairs)))


def clicloop(*args: str, cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault is not None:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "clicloop", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def review(url: str, folder: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    return clicloop("deploy", "review", "--ledger", url, "--deployment", "bot", "--truth", str(folder / "truth.jsonl"),
                    "--params", '{"careless_fraction": 0}', cwd=folder, fault=fault)


def outcome(url: str) -> dict[str, Any]:
    """What the review recorded: answered task keys, verdicts, labels, payments (count, total)."""
    a, rv, p = s.assignments.c, s.pd_reviews.c, s.payments.c
    with Ledger(url) as ledger:
        with ledger.engine_.connect() as conn:
            answered = sorted(conn.execute(select(a.task_key).where(a.loop == LOOP, a.status == "submitted")).scalars())
            verdicts = sorted(map(tuple, conn.execute(select(rv.task_key, rv.prediction_id, rv.verdict, rv.label)
                                                      .where(rv.deployment == "bot")).all()))
            n_answers = conn.execute(select(func.count()).where(a.loop == LOOP)).scalar_one()
            paid = tuple(conn.execute(select(func.count(), func.sum(p.amount_micros)).where(p.loop == LOOP)).one())
        labels = ledger.labels(LOOP)
        problems = verify(ledger)
    return {"answered": answered, "verdicts": verdicts, "answers": n_answers, "paid": paid, "labels": labels,
            "problems": problems}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    """A review that was never interrupted: its outcome, its printed summary and its ledger file."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    url = f"sqlite:///{folder / 'ledger.db'}"
    deployment(url, folder)
    run = review(url, folder)
    assert run.returncode == 0, run.stderr
    out = outcome(url)
    assert out["problems"] == [] and len(out["verdicts"]) == len(out["answered"]) > 20
    return out, run.stdout, folder / "ledger.db"


def assert_like_uninterrupted(url: str, expected: dict[str, Any]) -> None:
    got = outcome(url)
    assert got["problems"] == []
    assert [v[0] for v in got["verdicts"]] == got["answered"]  # every answered review task has exactly one verdict
    assert got["labels"] == {v[1]: v[3] for v in got["verdicts"]}  # and the label it gave the prediction
    assert (got["answers"], got["paid"]) == (expected["answers"], expected["paid"])  # nobody answered or paid twice
    assert got["verdicts"] == expected["verdicts"]


@pytest.mark.slow
@pytest.mark.parametrize("where", REVIEW_BOUNDARIES)
def test_a_review_killed_at_each_commit_boundary_resumes_to_the_uninterrupted_outcome(where: str, uninterrupted, tmp_path) -> None:
    expected, summary, _ = uninterrupted
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    deployment(url, tmp_path)
    killed = review(url, tmp_path, fault=where)
    assert killed.returncode == FAULT_EXIT, (killed.returncode, killed.stderr)  # it reached the boundary and died there
    resumed = review(url, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    if where != "finished":  # killed after the batch was closed, the resume finds nothing left to send
        assert resumed.stdout == summary  # "batch 0: N/N reviewed ...", not "0/N"
    assert_like_uninterrupted(url, expected)


@pytest.mark.slow
@pytest.mark.integration
def test_a_review_killed_after_its_answers_resumes_on_postgresql(pg_url: str, uninterrupted, tmp_path) -> None:
    expected, summary, _ = uninterrupted
    deployment(pg_url, tmp_path)
    assert review(pg_url, tmp_path, fault="answers").returncode == FAULT_EXIT
    resumed = review(pg_url, tmp_path)
    assert resumed.returncode == 0 and resumed.stdout == summary, resumed.stderr
    assert_like_uninterrupted(pg_url, expected)


@pytest.mark.slow
def test_ledger_verify_names_answers_without_verdicts_and_a_review_rebuilds_them(uninterrupted, tmp_path) -> None:
    expected, _, ledger_file = uninterrupted
    shutil.copy(ledger_file, tmp_path / "ledger.db")
    shutil.copy(ledger_file.parent / "truth.jsonl", tmp_path / "truth.jsonl")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger, ledger.engine_.begin() as conn:  # as a crash between the two commits left it
        conn.execute(delete(s.pd_reviews).where(s.pd_reviews.c.task_key.in_(expected["answered"][:3])))
        conn.execute(delete(s.labels).where(s.labels.c.loop == LOOP, s.labels.c.item_id == expected["verdicts"][5][1]))
    checked = clicloop("ledger", "verify", "--ledger", url, cwd=tmp_path)
    assert checked.returncode == 1
    assert "FAIL every answered review task has its verdict: 3 row(s)" in checked.stdout, checked.stdout
    assert "FAIL every review verdict has its label: 1 row(s)" in checked.stdout, checked.stdout
    status = json.loads(clicloop("deploy", "status", "--json", "--ledger", url, "--deployment", "bot", cwd=tmp_path).stdout)
    assert status["review"]["reviews"] == len(expected["answered"]) - 3

    rebuilt = review(url, tmp_path)
    assert rebuilt.returncode == 0 and "rebuilt 3 verdict(s)" in rebuilt.stderr, (rebuilt.stdout, rebuilt.stderr)
    assert_like_uninterrupted(url, expected)
    assert clicloop("ledger", "verify", "--ledger", url, cwd=tmp_path).stdout.startswith("ok:")
