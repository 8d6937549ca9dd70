"""The discrete-event crowd (backends/des.py): a simulated clock, waiting measured, withdrawal,
workers who come and go, reproducible draws and a state that survives a restart."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clicloop.backends.des import EventCrowd
from clicloop.orchestrator.errors import BackendError
from clicloop.orchestrator.types import BackendContext, Task

LABELS = ("a", "b", "c")
PURPOSE = "Sort short notes into three kinds for a test."
TRUTH = {f"i{n}": LABELS[n % 3] for n in range(40)}


def context(seed: int = 0, loop: str = "des") -> BackendContext:
    return BackendContext(loop, LABELS, PURPOSE, seed, TRUTH)


def tasks(items: range, round_no: int = 0) -> list[Task]:
    return [Task(f"des/{round_no}/i{n}/0", "des", round_no, f"i{n}", 0, PURPOSE, LABELS) for n in items]


def crowd(seed: int = 0, **params) -> EventCrowd:
    c = EventCrowd(**{"n_workers": 4, "compute_s": 1.0, **params})
    c.open(context(seed))
    return c


def test_same_seed_same_answers_at_the_same_simulated_times():
    runs = []
    for seed in (0, 0, 1):
        c = crowd(seed, error_rate=0.3)
        c.dispatch(tasks(range(12)))
        runs.append((c.collect(tasks(range(12))), c.now_))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]
    answers, now = runs[0]
    assert len(answers) == 12 and now == pytest.approx(max(a.submitted_at for a in answers) - c.epoch0)
    assert all(a.label in LABELS and a.active_s > 0 for a in answers)


def test_time_with_nothing_to_do_is_reported_as_waiting_on_the_next_answer():
    c = crowd(n_workers=2, answer_sigma=0.0, speed_spread=0.0, answer_median_s=10.0, compute_s=None)
    c.dispatch(tasks(range(1)))  # worker 0 takes it at 0 s; worker 1 waits
    c.charge(100.0, key="fit-1")  # the loop computes for 100 simulated seconds
    assert c.now_ == 100.0
    c.dispatch(tasks(range(1, 3)))  # worker 0 (free since 10 s) and worker 1 take one each
    answers = c.collect(tasks(range(3)))
    assert [a.wait_s for a in answers if a.worker == "des-0001"] == [100.0]
    zero = sorted((a for a in answers if a.worker == "des-0000"), key=lambda a: a.submitted_at)
    assert [a.wait_s for a in zero] == [0.0, 90.0]  # idle from 10 s, when it finished, to 100 s


def test_the_waiting_after_the_last_answer_is_settled_once(tmp_path):
    path = str(tmp_path / "crowd.pkl")
    c = crowd(n_workers=2, answer_sigma=0.0, speed_spread=0.0, answer_median_s=10.0, compute_s=None, state_path=path)
    c.dispatch(tasks(range(1)))  # worker 0 takes it at 0 s; worker 1 waits from 0 s
    c.collect(tasks(range(1)))
    c.charge(50.0, key="fit-1")  # the loop stops at 60 s
    assert c.settle_waits("loop/stop") == {"des-0000": 50.0, "des-0001": 60.0}
    again = crowd(n_workers=2, answer_sigma=0.0, speed_spread=0.0, answer_median_s=10.0, compute_s=None, state_path=path)
    assert again.settle_waits("loop/stop") == {"des-0000": 50.0, "des-0001": 60.0}  # a resumed loop: the same, once
    again.charge(30.0, key="fit-2")  # the loop goes on later: only the waiting since is reported
    again.dispatch(tasks(range(1, 2)))
    assert [a.wait_s for a in again.collect(tasks(range(1, 2)))] == [30.0]
    assert again.settle_waits("loop/stop-2") == {"des-0001": 40.0}


def test_told_no_more_work_is_coming_people_leave_when_the_queue_is_empty_and_come_back_for_new_work():
    c = crowd(n_workers=3, answer_sigma=0.0, speed_spread=0.0, answer_median_s=10.0, compute_s=None)
    c.dispatch(tasks(range(4)))  # three start at 0 s, one task queued
    c.charge(5.0, key="fit")
    c.no_more_tasks()  # nobody is idle and a task is queued: nobody leaves yet
    assert c.active_workers() == 3
    c.collect(tasks(range(4)))  # at 10 s two finish and leave, one takes the queued task and leaves at 20 s
    assert c.active_workers() == 0 and c.settle_waits("stop") == {}  # nobody waited for work that would not come
    c.dispatch(tasks(range(4, 5)))  # new work: they come back
    assert c.active_workers() == 3
    answer = c.collect(tasks(range(4, 5)))[0]
    assert answer.wait_s == 0.0  # away while there was no work: no waiting


def test_charging_the_same_computation_twice_moves_the_clock_once():
    c = crowd()
    assert c.charge(5.0, key="loop/3") == 1.0  # compute_s replaces the measured seconds
    assert c.charge(5.0, key="loop/3") == 1.0  # the seconds charged the first time; the clock does not move again
    assert c.now_ == 1.0
    measured = crowd(compute_s=None)
    assert measured.charge(2.5, key="x") == 2.5 and measured.now_ == 2.5


def test_only_queued_tasks_are_withdrawn_never_a_started_one():
    c = crowd(n_workers=2)
    c.dispatch(tasks(range(5)))
    started = {"des/0/i0/0", "des/0/i1/0"}
    assert c.queued() == {t.key for t in tasks(range(2, 5))}
    taken = c.withdraw([t.key for t in tasks(range(5))])
    assert set(taken) == {t.key for t in tasks(range(2, 5))}
    answers = c.collect(tasks(range(5)))
    assert {a.task_key for a in answers} == started
    c.dispatch(tasks(range(2, 3)))  # sent again (a resumed loop): asked again
    assert [a.task_key for a in c.collect(tasks(range(2, 3)))] == ["des/0/i2/0"]


def test_workers_come_and_go():
    c = crowd(n_workers=10, session_mean_s=600.0, absence_mean_s=600.0, present_share=0.5, compute_s=None)
    present = [c.active_workers()]
    for n in range(10):
        c.charge(300.0, key=str(n))
        present.append(c.active_workers())
    assert len(set(present)) > 2  # arrivals and departures change who is there
    c.dispatch(tasks(range(30)))
    assert len(c.collect(tasks(range(30)))) == 30  # the absent arrive and work; nobody leaves mid-task


def test_collect_next_stops_at_the_first_answer():
    c = crowd(n_workers=3)
    c.dispatch(tasks(range(6)))
    first = c.collect_next(tasks(range(6)))
    assert len(first) == 1
    assert c.collect_next(tasks(range(6))) == first  # one is answered already: no time passes
    assert c.now_ == pytest.approx(first[0].submitted_at - c.epoch0)


def test_the_state_survives_a_restart(tmp_path):
    path = str(tmp_path / "crowd.pkl")
    c = crowd(state_path=path)
    c.dispatch(tasks(range(8)))
    done = c.collect(tasks(range(4)))
    again = crowd(state_path=path)
    assert again.now_ == c.now_ and again.collect(tasks(range(4))) == done
    assert again.collect(tasks(range(8))) == crowd(state_path=path).collect(tasks(range(8)))
    other = EventCrowd(state_path=path)
    with pytest.raises(BackendError, match="belongs to loop 'des' seed 0"):
        other.open(context(seed=5))


def test_a_loop_that_starts_over_gets_a_fresh_crowd_not_the_old_state(tmp_path):
    # `clicloop run --restart` deletes the loop from the ledger; a crowd that loaded its saved state
    # would replay answers to tasks the ledger no longer has (found by the #25 work, 2026-12-04).
    path = str(tmp_path / "crowd.pkl")
    fresh = crowd(state_path=str(tmp_path / "other.pkl"))
    fresh.dispatch(tasks(range(4)))
    first = fresh.collect(tasks(range(4)))
    old = crowd(state_path=path)
    old.dispatch(tasks(range(8)))
    old.collect(tasks(range(8)))
    again = EventCrowd(n_workers=4, compute_s=1.0, state_path=path)
    again.open(replace(context(), restart=True))
    assert again.now_ == 0.0
    again.dispatch(tasks(range(4)))
    assert again.collect(tasks(range(4))) == first


@pytest.mark.parametrize("params", [{"n_workers": 0}, {"answer_median_s": 0}, {"error_rate": 1.0}, {"present_share": 2.0},
                                    {"session_mean_s": -1.0}, {"compute_s": -1.0}, {"fee_rate": 20},
                                    {"n_workers": "three"}, {"answer_sigma": float("nan")}])
def test_bad_parameters_are_refused_by_name(params):
    """By name since 2026-12-07 (the message named the crowd only; a string n_workers was a
    TypeError; fee_rate 20, meant as 20%, made each answer cost 21 times its reward)."""
    (name, value), = params.items()
    with pytest.raises(BackendError, match=rf"event crowd: backend.params.{name} must be .*not {value!r}"):
        EventCrowd(**params).open(context())


def test_nobody_answers_one_item_twice_unless_everyone_has():
    """Three replicas of an item went to the same worker of six in one round (each a vote)."""
    c = crowd(0, n_workers=6)
    batch = [Task(f"des/0/i{n}/{r}", "des", 0, f"i{n}", r, PURPOSE, LABELS) for n in range(10) for r in range(3)]
    c.dispatch(batch)
    answers = c.collect(batch)
    pairs = [(a.task_key.split("/")[2], a.worker) for a in answers]
    assert len(answers) == 30 and len(set(pairs)) == 30
    few = crowd(0, n_workers=2)  # three replicas, two people: the third goes to one of them, it never waits forever
    few.dispatch(batch[:3])
    assert len(few.collect(batch[:3])) == 3
    half = crowd(0, n_workers=4, present_share=0.5)  # two of four never come: the two there take the third replica
    half.dispatch(batch[:3])
    assert len(half.collect(batch[:3])) == 3


def test_a_kill_inside_a_charge_leaves_its_mark_and_the_clock_saved_together(tmp_path, monkeypatch):
    """Found 2026-12-07: the charge was saved as done before the clock moved (two saves); a kill
    between them made the resumed loop skip the charge, every later simulated time 2 s early."""
    path = str(tmp_path / "crowd.pkl")
    params = dict(n_workers=2, answer_sigma=0.0, speed_spread=0.0, answer_median_s=10.0, compute_s=None, state_path=path)
    c = crowd(**params)
    c.dispatch(tasks(range(1)))
    real = EventCrowd._save

    def killed_after_saving(self):
        real(self)
        raise RuntimeError("killed")

    monkeypatch.setattr(EventCrowd, "_save", killed_after_saving)
    with pytest.raises(RuntimeError, match="killed"):
        c.charge(100.0, key="fit-1")
    monkeypatch.setattr(EventCrowd, "_save", real)
    again = crowd(**params)
    assert again.charge(100.0, key="fit-1") == 100.0 and again.now_ == 100.0
