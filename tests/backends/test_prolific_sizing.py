"""Prolific studies sized by the measured answer rate (backends/prolific_sizing.py): the rule on
a fake clock, then the backend in continuous mode against the local Prolific-API server."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest

from clicloop.backends.prolific import ProlificBackend
from clicloop.backends.prolific_client import ProlificError
from clicloop.backends.prolific_sizing import StudySizer
from clicloop.orchestrator.types import BackendContext, Task
from tests.support import prolific_server

LABELS = ("cat", "dog", "bird")
PURPOSE = "Teach a model to tell pets apart in photos for an animal shelter's intake form."


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _sizer(clock: Clock, **params) -> StudySizer:
    sizer = StudySizer(clock=clock, **params)
    sizer.check()
    return sizer


def test_the_first_study_has_first_places_until_an_answer_is_measured() -> None:
    clock = Clock()
    sizer = _sizer(clock, first_places=7)
    assert sizer.places().rule == "first" and sizer.decisions[-1].places == 7
    sizer.published(7)
    clock.t += 600
    assert sizer.places().places == 7  # ten minutes, no answer yet: still unknown, not zero


def test_places_follow_the_answers_per_hour_over_the_window() -> None:
    clock = Clock()
    sizer = _sizer(clock, study_minutes=10, rate_window_s=1800)
    sizer.published(10)
    for i in range(60):  # one answer a minute for an hour
        clock.t += 60
        sizer.observe(f"k{i}", clock.t)
    sizing = sizer.places()
    # the last 30 minutes hold 30 answers: 60 an hour, so a 10-minute study gets 10 places
    assert (sizing.rule, sizing.answers_in_window, sizing.window_s) == ("rate", 30, 1800)
    assert sizing.rate_per_hour == pytest.approx(60) and sizing.places == 10
    clock.t += 900  # quiet for 15 minutes: 15 answers left in the window
    assert sizer.places().places == 5


def test_a_young_run_measures_its_rate_over_the_time_since_the_first_study() -> None:
    clock = Clock()
    sizer = _sizer(clock, study_minutes=15, rate_window_s=3600)
    sizer.published(4)
    for i in range(4):
        clock.t += 30
        sizer.observe(f"k{i}", clock.t)
    # 4 answers in 2 minutes (not in an hour): 120 an hour, 30 places for a 15-minute study
    assert sizer.places().places == 30


def test_places_stay_within_their_bounds_and_count_submissions_not_tasks() -> None:
    clock = Clock()
    sizer = _sizer(clock, study_minutes=60, max_places=25, tasks_per_submission=3)
    sizer.published(1)
    for i in range(300):
        clock.t += 6
        sizer.observe(f"k{i}", clock.t)
    assert sizer.places().places == 25  # 600 answers an hour would ask 200 places of 3 tasks
    sizer.observe("k0", clock.t + 10**6)  # an answer seen again keeps its first time
    clock.t += 10**6  # the crowd is gone: nothing in the window
    assert sizer.places().places == 1


def test_each_task_counts_once_and_unknown_times_are_ignored() -> None:
    clock = Clock()
    sizer = _sizer(clock, study_minutes=60, rate_window_s=3600)
    sizer.published(1)
    clock.t += 3600
    for _ in range(3):
        sizer.observe("same", clock.t)
    sizer.observe("no-time", None)
    sizer.observe("nan", float("nan"))
    assert sizer.rate()[1] == 1 and sizer.places().places == 1


@pytest.mark.parametrize("bad", [{"min_places": 0}, {"max_places": 2.5}, {"min_places": 5, "max_places": 4},
                                 {"study_minutes": 0}, {"rate_window_s": float("inf")}, {"first_places": True}])
def test_a_rule_that_cannot_work_is_refused_by_name(bad) -> None:
    name = next(iter(bad))
    with pytest.raises(ProlificError, match=name.split("_")[0]):
        StudySizer(**bad).check()


# -- the backend against the local Prolific-API server ---------------------------------------------

TRUTH = {f"item-{i}": LABELS[i % 3] for i in range(60)}


def _tasks(start: int, n: int) -> list[Task]:
    return [Task(f"p/0/item-{i}/0", "p", 0, f"item-{i}", 0, PURPOSE, LABELS, payload=f"photo {i}") for i in range(start, start + n)]


def test_continuous_studies_are_sized_by_the_measured_rate_at_the_local_server() -> None:
    state = prolific_server.new_state(seed=5, truth=TRUTH, pool=prolific_server.Pool(return_rate=0.0, arrivals_per_step=2))
    with prolific_server.running(state) as url:
        backend = ProlificBackend(survey_url=f"{url}/survey", base_url=url, token="test-token", first_places=4,
                                  study_minutes=5, rate_window_s=3600, max_places=30)
        backend.open(BackendContext("p", LABELS, PURPOSE, 0, mode="continuous"))
        backend.sizer_.clock = lambda: (prolific_server.EPOCH + timedelta(seconds=state.clock_s)).timestamp()
        assert backend.can_withdraw and backend.active_workers() == 4

        first = _tasks(0, 4)
        assert backend.withdraw(["unknown"]) == []
        backend.dispatch(first)
        (study,) = state.studies.values()
        assert study["total_available_places"] == 4 and json.loads(study["metadata"])["sizing"]["rule"] == "first"
        assert backend.queued() == set() and backend.withdraw([first[0].key]) == []  # published: never taken back

        answers: dict[str, float] = {}
        while len(answers) < 4:
            answers.update((a.task_key, a.submitted_at) for a in backend.collect(first))
        backend.dispatch(_tasks(4, 40))
        second = [s for s in state.studies.values() if s is not study][0]
        sizing = json.loads(second["metadata"])["sizing"]
        # the rule, from what the server's clock and answers say
        now = backend.sizer_.clock()
        published_at = (prolific_server.EPOCH + timedelta(seconds=60.0 * 0)).timestamp()
        window = min(3600.0, now - published_at)
        expected = min(max(math.ceil(4 / window * 5 * 60), 1), 30)
        assert sizing["rule"] == "rate" and sizing["answers_in_window"] == 4
        assert second["total_available_places"] == sizing["published"] == sizing["places"] == expected
        assert len(state.studies) == 2 and len(backend.queued()) == 40 - expected  # the rest gathers for the next
        assert backend.active_workers() == expected
        gathering = sorted(backend.queued())
        assert backend.withdraw(gathering[:2]) == gathering[:2] and len(backend.queued()) == 38 - expected
        backend.collect(_tasks(4, 40))  # the second study still has free places: nothing new goes out
        assert len(state.studies) == 2


def test_a_continuous_loop_on_the_local_server_publishes_studies_sized_by_its_rate(tmp_path) -> None:
    from clicloop import config_from_dict
    from clicloop.orchestrator.data import load_data
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.ledger.verify import verify
    from clicloop.orchestrator.loop import Loop
    from tests.conftest import digits_config

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = config_from_dict(digits_config(url, loop={"name": "pc", "mode": "continuous", "refit_every": 5,
                                                       "poll_seconds": 0.01, "round_timeout_s": 60},
                                            backend={"name": "prolific"}, stop={"max_labels": 30},
                                            wage_floor={"per_backend": {"prolific": {"amount": 9.0, "currency": "GBP"}}}))
    pool, _, _ = load_data(config.data, config.loop.seed)
    state = prolific_server.new_state(seed=1, truth=dict(zip(pool.ids, pool.truth)), pool=prolific_server.Pool(n=60))
    with prolific_server.running(state) as base:
        backend = ProlificBackend(survey_url=f"{base}/survey", base_url=base, token=state.token, first_places=4,
                                  study_minutes=3, max_places=12)
        backend.clock = lambda: (prolific_server.EPOCH + timedelta(seconds=state.clock_s)).timestamp()
        results = Loop(config, backend=backend).run()
    assert results[-1].stop_reason.startswith("label budget spent")
    with Ledger(url) as ledger:
        assert verify(ledger) == [] and ledger.spent("pc")["answers"] == 30
    studies = sorted(state.studies.values(), key=lambda s: s["id"][-14:])  # in the order they were created
    sizings = [json.loads(s["metadata"])["sizing"] for s in studies]
    assert sizings[0]["rule"] == "first" and sizings[0]["places"] == 4 and len(studies) >= 3
    for study, sizing in zip(studies, sizings):
        assert study["total_available_places"] == sizing["published"] <= sizing["places"]
        if sizing["rule"] == "rate":  # the recorded rate gives the recorded places
            assert sizing["places"] == min(max(math.ceil(sizing["rate_per_hour"] * 3 / 60 - 1e-9), 1), 12)
    assert any(s["rule"] == "rate" for s in sizings)


def test_a_study_a_crash_left_unpublished_is_published_when_the_resumed_loop_dispatches_its_tasks() -> None:
    """Continuous mode skipped tasks already in a study and never published that study: after a
    crash between create and publish its tasks stayed open and the resumed loop polled forever."""
    state = prolific_server.new_state(seed=5, truth=TRUTH, pool=prolific_server.Pool(return_rate=0.0))
    with prolific_server.running(state) as url:
        def backend() -> ProlificBackend:
            b = ProlificBackend(survey_url=f"{url}/survey", base_url=url, token="test-token", first_places=4)
            b.open(BackendContext("p", LABELS, PURPOSE, 0, mode="continuous"))
            return b

        first = _tasks(0, 4)
        crashed = backend()
        crashed._create("p-r0-crashed", first, 4)  # created, then the process died before publishing
        assert [s["status"] for s in state.studies.values()] == ["UNPUBLISHED"]
        resumed = backend()  # open() finds the draft by its name
        resumed.dispatch(first)
        assert [s["status"] for s in state.studies.values()] == ["ACTIVE"]


def test_a_study_prolific_is_still_publishing_counts_its_places() -> None:
    """Found 2026-12-07: a publish answered PUBLISHING (Prolific publishes after balance checks)
    left the study out of the free places, so every task added meanwhile got a study of its own
    (10 studies against 7 for the same tasks)."""
    counts = []
    for publishing in (False, True):
        state = prolific_server.new_state(seed=5, truth=TRUTH, pool=prolific_server.Pool(return_rate=0.0, arrivals_per_step=0))
        state.publish_answers_publishing = publishing
        with prolific_server.running(state) as url:
            backend = ProlificBackend(survey_url=f"{url}/survey", base_url=url, token="test-token", first_places=4,
                                      study_minutes=5, rate_window_s=3600, max_places=30)
            backend.open(BackendContext("p", LABELS, PURPOSE, 0, mode="continuous"))
            tasks = _tasks(0, 12)
            for start in range(0, 12, 2):  # tasks arrive two at a time, nobody answers yet
                backend.dispatch(tasks[start:start + 2])
                backend.collect(tasks[:start + 2])
            counts.append(len(state.studies))
    assert counts[1] == counts[0], counts
