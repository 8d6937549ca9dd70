"""Work that brought no answer (Prolific submissions returned or timed out) and the batches a
backend published, recorded in the ledger by the loop (orchestrator/crowd/backend_facts.py).

The Prolific tests run the real loop against tests/support/prolific_server.py, a local server
written from Prolific's published API (we cannot reach the hosted service).
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import pytest

from clicloop import config_from_dict
from clicloop.backends.prolific import ProlificBackend
from clicloop.orchestrator.data import load_data
from clicloop.orchestrator.dashboard import queries
from clicloop.orchestrator.dashboard.source import Filters
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.accounting import by_worker, spent, unpaid_by_kind
from clicloop.orchestrator.ledger.unpaid import batches
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.reporting.report import build_report
from clicloop.orchestrator.crowd.backend_facts import record_backend_facts
from clicloop.orchestrator.types import PublishedBatch, UnpaidWork
from tests.conftest import digits_config
from tests.support import prolific_server


def _report(url: str, tmp_path) -> str:
    """``clicloop report --ledger URL`` as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "clicloop", "report", "--ledger", url, "--loop", "pr"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _run(tmp_path, *, mode: str = "rounds", return_rate: float = 0.4, max_labels: int = 30):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    loop = {"name": "pr", "poll_seconds": 0.01, "round_timeout_s": 60}
    if mode == "continuous":
        loop.update(mode="continuous", refit_every=5)
    config = config_from_dict(digits_config(url, loop=loop, backend={"name": "prolific"}, stop={"max_labels": max_labels},
                                            wage_floor={"per_backend": {"prolific": {"amount": 9.0, "currency": "GBP"}}}))
    pool, _, _ = load_data(config.data, config.loop.seed)
    state = prolific_server.new_state(seed=2, truth=dict(zip(pool.ids, pool.truth)),
                                      pool=prolific_server.Pool(n=60, return_rate=return_rate))
    with prolific_server.running(state) as base:
        backend = ProlificBackend(survey_url=f"{base}/survey", base_url=base, token=state.token, first_places=4,
                                  study_minutes=3, max_places=12)
        backend.clock = lambda: (prolific_server.EPOCH + timedelta(seconds=state.clock_s)).timestamp()
        Loop(config, backend=backend).run()
    return url, state, backend


def test_returned_submissions_are_unpaid_work_of_their_participants_in_every_wage_view(tmp_path) -> None:
    url, state, backend = _run(tmp_path)
    returned = backend.returned_effort()
    assert returned, "the server's pool returns 40% of submissions"
    expected = sum(u.seconds for u in returned if u.seconds > 0)
    with Ledger(url) as ledger:
        assert verify(ledger) == []
        kinds = unpaid_by_kind(ledger.engine_, "pr")
        assert math.isclose(kinds["returned"] * 3600, expected, rel_tol=1e-6)  # 0 before: the backend kept them to itself
        workers = {row["worker"]: row for row in by_worker(ledger.engine_, "pr")}
        for u in returned:  # each participant's returned time is in their own unpaid hours
            assert workers[ledger.pseudonym("prolific", u.participant)]["unpaid_hours"] > 0
        only_returned = {ledger.pseudonym("prolific", u.participant) for u in returned} - \
            {ledger.pseudonym("prolific", s.get("participant_id") or s["participant"]) for s in state.submissions.values()
             if s["status"] not in ("RETURNED", "TIMED-OUT")}
        assert only_returned  # seed 2, 40% returns: some people only returned work
        for worker in only_returned:  # people who only returned work: hours, no answer, no pay
            assert workers[worker]["answers"] == 0 and workers[worker]["wage_total_time"] in (None, 0)
        rows, totals = build_report(ledger, "pr")
        assert math.isclose(totals.returned_hours * 3600, expected, rel_tol=1e-6)
        assert math.isclose(sum(r.total_hours - r.active_hours for r in rows) * 3600,
                            (spent(ledger.engine_, "pr")["total_hours"] - spent(ledger.engine_, "pr")["active_hours"]) * 3600,
                            rel_tol=1e-9)
        assert f"returned or timed-out work (unpaid, counted in the total time): {expected / 3600:.2f} h" in _report(url, tmp_path)
        scope = queries.resolve(ledger.engine_, Filters())
        assert math.isclose(queries.unpaid_by_kind(ledger.engine_, scope)["returned"], kinds["returned"], rel_tol=1e-9)
        dash = {row["worker"]: row["unpaid_hours"] for row in queries.wages(ledger.engine_, scope)}
        assert dash == pytest.approx({w: row["unpaid_hours"] for w, row in workers.items()})
        # the studies of rounds mode, one per batch, with their places
        recorded = batches(ledger, "pr")
        assert {b["external_id"] for b in recorded} == set(state.studies)
        assert all(b["sizing"] is None and b["places"] == b["tasks"] for b in recorded)


def test_a_resumed_loop_records_returned_work_and_studies_once(tmp_path) -> None:
    url, _, backend = _run(tmp_path, max_labels=20)
    with Ledger(url) as ledger:
        before = unpaid_by_kind(ledger.engine_, "pr")["returned"], len(batches(ledger, "pr"))
        loop = SimpleNamespace(backend_=backend, config=SimpleNamespace(backend=SimpleNamespace(name="prolific")),
                               ids_=SimpleNamespace(real={}), ledger_=ledger, name="pr")
        record_backend_facts(loop, 0)  # a resumed loop's backend reports all it saw again
        assert (unpaid_by_kind(ledger.engine_, "pr")["returned"], len(batches(ledger, "pr"))) == before


def test_continuous_studies_and_their_sizing_are_in_the_ledger_and_the_report(tmp_path) -> None:
    url, state, _ = _run(tmp_path, mode="continuous", return_rate=0.1)
    with Ledger(url) as ledger:
        recorded = batches(ledger, "pr")
        assert {b["external_id"] for b in recorded} == set(state.studies)
        for b in recorded:
            study = state.studies[b["external_id"]]
            assert b["sizing"] == json.loads(study["metadata"])["sizing"] and b["places"] == study["total_available_places"]
        assert recorded[0]["sizing"]["rule"] == "first" and any(b["sizing"]["rule"] == "rate" for b in recorded)
        rows, totals = build_report(ledger, "pr")
        assert totals.batches["batches"] == len(state.studies) and totals.batches["rate_sized"] >= 1
        assert f"batches published: {len(state.studies)} for" in _report(url, tmp_path)


class _Odd:
    """A third-party backend whose reports are partly malformed."""

    def unpaid_work(self):
        return [UnpaidWork("s1", "w1", 30.0, "returned", ("t/0/a/0",)), UnpaidWork("", "w2", 5.0, "returned"),
                UnpaidWork("s3", "w3", float("nan"), "returned"), "not an item"]

    def published_batches(self):
        return [PublishedBatch("b1", ("t/0/a/0",), places=-1), PublishedBatch("b2", (), places=3)]


def test_malformed_reports_are_left_out_by_name_and_never_stop_the_loop(tmp_path, caplog) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        ledger.begin_loop("t", "h", "{}", 0)
        loop = SimpleNamespace(backend_=_Odd(), config=SimpleNamespace(backend=SimpleNamespace(name="odd")),
                               ids_=SimpleNamespace(real={}), ledger_=ledger, name="t")
        with caplog.at_level(logging.WARNING):
            record_backend_facts(loop, 3)
        assert unpaid_by_kind(ledger.engine_, "t")["returned"] * 3600 == pytest.approx(30.0)
        assert [b["key"] for b in batches(ledger, "t")] == ["b2"] and batches(ledger, "t")[0]["round_no"] == 3
    text = caplog.text
    assert "field 'key'" in text and "field 'seconds'" in text and "expected a UnpaidWork" in text and "field 'places'" in text
    assert text.count("backend odd") == 4
