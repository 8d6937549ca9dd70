"""ProlificBackend against tests/support/prolific_server.py.

We cannot reach Prolific from here: the server these tests talk to is a local stand-in written
from Prolific's published API documentation (https://docs.prolific.com/api-reference), with a
seeded, simulated participant pool. What it checks is our reading of those documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from clicloop.backends.prolific import APPEAL_NOTE, ProlificBackend, RejectionReasonRequired, _batch_id
from clicloop.backends.prolific_client import ProlificError
from clicloop.orchestrator.types import Answer, BackendContext, Task
from tests.support import prolific_server

LABELS = ("cat", "dog", "bird")
PURPOSE = "Teach a model to tell pets apart in photos for an animal shelter's intake form."
TRUTH = {f"item-{i}": LABELS[i % 3] for i in range(12)}


def _tasks(n: int = 6, round_no: int = 0) -> list[Task]:
    return [Task(f"p/{round_no}/item-{i}/0", "p", round_no, f"item-{i}", 0, PURPOSE, LABELS, payload=f"photo {i}")
            for i in range(n)]


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[prolific_server.State, str]]:
    pool = getattr(request, "param", None) or prolific_server.Pool()
    state = prolific_server.new_state(seed=3, truth=TRUTH, pool=pool)
    with prolific_server.running(state) as url:
        yield state, url


def _backend(url: str, **params: Any) -> ProlificBackend:
    backend = ProlificBackend(survey_url=f"{url}/survey", base_url=url, token="test-token", **params)
    backend.open(BackendContext("p", LABELS, PURPOSE, 0))
    return backend


def _answers(backend: ProlificBackend, tasks: list[Task]) -> list[Answer]:
    answers: dict[str, Answer] = {}
    for _ in range(50):
        answers.update((a.task_key, a) for a in backend.collect(tasks))
        if len(answers) == len(tasks):
            return sorted(answers.values(), key=lambda a: a.task_key)
    raise AssertionError(f"only {len(answers)} of {len(tasks)} answered")


def test_a_batch_becomes_one_published_study_with_its_purpose_and_a_fair_reward(server) -> None:
    state, url = server
    backend = _backend(url)
    backend.dispatch(_tasks())
    (study,) = state.studies.values()
    assert study["status"] == "ACTIVE"
    assert PURPOSE in study["description"] and "cat, dog, bird" in study["description"]
    assert study["estimated_completion_time"] == 1 and study["total_available_places"] == 6
    assert study["reward"] == 15  # GBP 9.00/h (recommended) for 1 minute, rounded up to the cent
    assert study["completion_codes"][0]["actions"] == [{"action": "MANUALLY_REVIEW"}]
    assert "{{%SESSION_ID%}}" in study["external_study_url"] and study["prolific_id_option"] == "url_parameters"
    assert ("POST", f"/api/v1/studies/{study['id']}/transition/") in state.calls
    assert backend.expected_cost_per_task() == Decimal("0.19995")  # 0.15 + 33.3% fee, exact (a float before)


def test_the_token_is_sent_and_checked(server) -> None:
    _, url = server
    backend = ProlificBackend(survey_url=f"{url}/survey", base_url=url, token="wrong")
    with pytest.raises(ProlificError) as err:
        backend.open(BackendContext("p", LABELS, PURPOSE, 0))
    assert err.value.status == 401


def test_the_reward_follows_the_median_task_time_and_never_goes_under_prolifics_minimum(server) -> None:
    state, url = server
    backend = _backend(url, median_task_seconds=150, tasks_per_submission=2, reward_per_hour=10.0)
    backend.dispatch(_tasks(4))
    (study,) = state.studies.values()
    assert (study["estimated_completion_time"], study["reward"], study["total_available_places"]) == (5, 84, 2)
    for currency, rate in (("GBP", 5.99), ("USD", 7.99)):
        with pytest.raises(ProlificError, match="minimum"):
            _backend(url, currency=currency, reward_per_hour=rate)
    _backend(url, currency="USD", reward_per_hour=8.00)  # exactly the minimum is allowed


def test_observed_task_times_replace_the_prior_for_the_next_study(server) -> None:
    _, url = server
    backend = _backend(url, median_task_seconds=300)
    assert backend.expected_cost_per_task() == Decimal("0.99975")
    tasks = _tasks(6)
    backend.dispatch(tasks)
    _answers(backend, tasks)
    assert backend.expected_cost_per_task() == Decimal("0.19995")  # ~12 s per task -> 1 minute


def test_dispatch_is_idempotent_across_processes_and_a_crash_between_create_and_publish(server) -> None:
    state, url = server
    tasks = _tasks()
    first = _backend(url)
    first._create(_batch_id("p", tasks), tasks)  # created, then "crashed" before publishing
    assert [s["status"] for s in state.studies.values()] == ["UNPUBLISHED"]
    second = _backend(url)
    second.dispatch(tasks)
    second.dispatch(tasks)
    _backend(url).dispatch(list(reversed(tasks)))
    assert [s["status"] for s in state.studies.values()] == ["ACTIVE"]
    assert json.loads(next(iter(state.studies.values()))["metadata"])["task_keys"] == sorted(t.key for t in tasks)


def test_submissions_map_to_answers(server) -> None:
    state, url = server
    backend = _backend(url)
    tasks = _tasks()
    backend.dispatch(tasks)
    assert backend.collect(tasks) == []  # participants are still ACTIVE
    answers = _answers(backend, tasks)
    subs = {s["id"]: s for s in state.submissions.values()}
    (batch,) = state.responses.values()
    seconds = {r["task_key"]: r["active_s"] for r in batch}
    for a in answers:
        sub = subs[a.external_id]
        assert sub["status"] == "AWAITING REVIEW" and a.worker == sub["participant"]
        # the whole submission: the survey's seconds on the task and the 20 s around it (instructions, loading),
        # which the study pays for (before 2026-12-06 the 20 s were recorded nowhere: a higher wage than paid)
        assert a.active_s == pytest.approx(seconds[a.task_key] + 20.0) and a.currency == "GBP"
        assert a.reward == Decimal("0.15") and a.fee == Decimal("0.049950")  # exact: 0.15 x 0.333, to the micro-unit
        assert a.submitted_at - a.accepted_at == pytest.approx(a.active_s)
    assert sum(a.label == TRUTH[a.task_key.split("/")[2]] for a in answers) >= 4


@pytest.mark.parametrize("server", [prolific_server.Pool(return_rate=0.5)], indirect=True)
def test_returned_submissions_reopen_the_place_and_keep_their_unpaid_time(server) -> None:
    state, url = server
    backend = _backend(url)
    tasks = _tasks()
    backend.dispatch(tasks)
    answers = _answers(backend, tasks)
    assert {a.task_key for a in answers} == {t.key for t in tasks}
    returned = backend.returned_effort()
    assert returned and all(r.status == "RETURNED" and r.seconds >= 0 for r in returned)
    assert {r.participant for r in returned}.isdisjoint({a.worker for a in answers})


def test_review_approves_and_rejects_only_with_a_reason(server) -> None:
    state, url = server
    backend = _backend(url)
    tasks = _tasks()
    backend.dispatch(tasks)
    answers = _answers(backend, tasks)
    with pytest.raises(RejectionReasonRequired):
        backend.review(tasks[0].key, accept=False)
    with pytest.raises(RejectionReasonRequired):
        backend.review(tasks[0].key, accept=False, reason="  ")
    with pytest.raises(ProlificError, match="category"):
        backend.review(tasks[0].key, accept=False, reason="too fast", category="BORED")
    backend.review(tasks[0].key, accept=False, reason="Every item was answered in under a second.", category="TOO_QUICKLY")
    rejected = state.submissions[answers[0].external_id]
    assert rejected["status"] == "REJECTED" and rejected["rejection"]["rejection_category"] == "TOO_QUICKLY"
    assert rejected["rejection"]["message"] == "Every item was answered in under a second." + APPEAL_NOTE
    assert len(rejected["rejection"]["message"]) >= 100  # Prolific's documented minimum
    backend.review(answers[1].external_id, accept=True)
    backend.review(answers[1].external_id, accept=True)  # documented as idempotent
    assert state.submissions[answers[1].external_id]["status"] == "APPROVED"
    backend.approve_all(t.key for t in tasks[2:])
    assert [state.submissions[a.external_id]["status"] for a in answers[2:]] == ["APPROVED"] * 4


def test_a_bonus_is_set_up_paid_once_and_explained(server, tmp_path) -> None:
    state, url = server
    backend = _backend(url, payments_journal=str(tmp_path / "paid.jsonl"))
    tasks = _tasks()
    backend.dispatch(tasks)
    worker = _answers(backend, tasks)[0].worker
    payment = backend.pay_bonus(worker, 0.5, "Thank you: your answers matched the experts'.", key="bonus-1")
    assert payment.amount == 0.5 and payment.kind == "bonus"
    with pytest.raises(ProlificError, match="already"):
        backend.pay_bonus(worker, 0.5, "again", key="bonus-1")
    with pytest.raises(ProlificError, match="reason"):
        backend.pay_bonus(worker, 0.5, "", key="bonus-2")
    assert state.payments == [{"bonus_id": payment.bonus_id, "participant": worker, "amount": 0.5,
                               "study": payment.study_id}]
    assert state.messages[0]["recipient_id"] == worker and "matched" in state.messages[0]["body"]


def test_bonuses_are_exact_whole_cents_rounded_up(server, tmp_path) -> None:
    state, url = server
    backend = _backend(url, payments_journal=str(tmp_path / "paid.jsonl"))
    tasks = _tasks()
    backend.dispatch(tasks)
    worker = _answers(backend, tasks)[0].worker
    tenth = backend.pay_bonus(worker, 0.1, "Thank you.", key="b1")  # a float is read by its repr: 0.10, not 0.1000000000000000055
    assert isinstance(tenth.amount, Decimal) and tenth.amount == Decimal("0.10")
    finer = backend.pay_bonus(worker, "0.101", "Thank you.", key="b2")  # Prolific pays cents: never less than asked
    assert finer.amount == Decimal("0.11")
    assert [p["amount"] for p in state.payments] == [0.1, 0.11]
    with pytest.raises(ProlificError, match="bonus"):
        backend.pay_bonus(worker, "ten", "Thank you.", key="b3")
    with pytest.raises(ProlificError, match="positive"):
        backend.pay_bonus(worker, Decimal("0"), "Thank you.", key="b4")


@pytest.mark.parametrize("server", [prolific_server.Pool(seconds_median=200.0, return_rate=0.0)], indirect=True)
def test_a_study_slower_than_estimated_gets_adjustment_payments_once(server, tmp_path) -> None:
    state, url = server
    backend = _backend(url, median_task_seconds=30, payments_journal=str(tmp_path / "paid.jsonl"))  # estimates 1 minute; people take ~3.7
    tasks = _tasks()
    backend.dispatch(tasks)
    answers = _answers(backend, tasks)
    planned = backend.adjustment_payments(dry_run=True)
    assert state.payments == [] and len(planned) == 6 and all(p.amount > Decimal("0.3") for p in planned)
    assert all(isinstance(p.amount, Decimal) and p.amount == p.amount.quantize(Decimal("0.01")) for p in planned)
    paid = backend.adjustment_payments()
    assert [p.amount for p in paid] == [p.amount for p in planned]
    assert sorted(p.participant for p in paid) == sorted(a.worker for a in answers)
    assert backend.adjustment_payments() == []  # once per participant and study
    assert len(state.payments) == 6 and all("Adjustment" in m["body"] for m in state.messages)


@pytest.mark.parametrize("server", [prolific_server.Pool(seconds_median=200.0, return_rate=0.0)], indirect=True)
def test_payments_are_made_once_across_processes_and_a_lost_answer_is_never_repaid(server, tmp_path) -> None:
    """Found 2026-12-06: the guard against paying twice lived in memory: a second process (a
    resume) paid every adjustment again, and a retried bonus after a lost answer paid twice;
    Prolific's pay call is not idempotent. A message that failed after a payment raised, and the
    payments already made were lost with the list that held them."""
    state, url = server
    journal = tmp_path / "paid.jsonl"
    first = _backend(url, median_task_seconds=30, payments_journal=str(journal))
    tasks = _tasks()
    first.dispatch(tasks)
    worker = _answers(first, tasks)[0].worker
    with pytest.raises(ProlificError, match="needs params.payments_journal"):
        _backend(url).pay_bonus(worker, 1, "Thank you.", key="k0")
    first.pay_bonus(worker, 1, "Thank you.", key="bonus-7")
    second = _backend(url, median_task_seconds=30, payments_journal=str(journal))  # a resumed process
    second.submission_of_ = first.submission_of_
    with pytest.raises(ProlificError, match="'bonus-7' was already made"):
        second.pay_bonus(worker, 1, "Thank you.", key="bonus-7")
    assert len(state.payments) == 1

    state.fail_messages = True  # the payment goes through, telling the participant why does not
    payment = second.pay_bonus(worker, "0.20", "A thank-you.", key="bonus-8")
    assert payment.amount == Decimal("0.20") and len(state.payments) == 2
    state.fail_messages = False

    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps(e) + "\n" for e in lines if not (e["key"] == "bonus-8" and e["state"] == "paid")))
    third = _backend(url, median_task_seconds=30, payments_journal=str(journal))  # bonus-8's answer was lost
    third.submission_of_ = first.submission_of_
    with pytest.raises(ProlificError, match="'bonus-8' was started .* never confirmed: .*Check the study's bonus payments"):
        third.pay_bonus(worker, "0.20", "A thank-you.", key="bonus-8")
    paid = third.adjustment_payments()
    assert len(paid) == 6 and _backend(url, payments_journal=str(journal)).adjustment_payments() == []
    assert len(state.payments) == 2 + 6


def test_a_task_answered_in_two_submissions_is_the_first_ones_and_an_extra_answer(server) -> None:
    """The survey tool may hand one task to two participants; Prolific pays both submissions, so
    the second answer comes back as an extra answer (the loop records and pays it, once), and
    which one is first never changes from one poll to the next."""
    state, url = server
    backend = _backend(url)
    tasks = _tasks()
    backend.dispatch(tasks)
    first = {a.task_key: a for a in _answers(backend, tasks)}
    key = tasks[0].key
    with state.lock:  # one more participant, whose submission also answered the first task, completed last
        (batch_id,) = state.responses
        study_id = next(iter(state.studies))
        sub = {"id": state.new_id(), "study_id": study_id, "participant": "late-participant", "careless": False,
               "status": "AWAITING REVIEW", "started_at": "2026-01-01T00:00:00Z", "completed_at": "2030-01-01T00:00:00Z",
               "tasks": [key]}
        state.submissions[sub["id"]] = sub
        state.responses[batch_id].append({"session_id": sub["id"], "participant_id": "late-participant",
                                          "task_key": key, "label": LABELS[0], "active_s": 9.0})
    for _ in range(2):  # polled again: the same answer first, the same extra
        answers = backend.collect(tasks)
        created = {a.task_key: a for a in answers if a.event == "created"}
        assert created[key].external_id == first[key].external_id
        (extra,) = [a for a in answers if a.event == "extra"]
        assert (extra.task_key, extra.worker, extra.external_id, extra.active_s) == (key, "late-participant", sub["id"], 9.0)
        assert extra.reward == Decimal("0.15")  # a one-task submission's reward
    assert [a.event for a in backend.collect(tasks[1:])].count("extra") == 1  # reported beside other tasks' answers too
    fresh = _backend(url)  # another process, that never saw the first answer alone: the same first, the same extra
    answers = fresh.collect(tasks)
    assert {a.task_key: a.external_id for a in answers if a.event == "created"}[key] == first[key].external_id
    assert [(a.task_key, a.external_id) for a in answers if a.event == "extra"] == [(key, sub["id"])]
    assert fresh.submission_of_[key][0] == first[key].external_id  # a review of the task concerns the first submission


def test_a_create_the_server_made_but_answered_500_to_is_not_repeated_and_the_resume_publishes_it(server) -> None:
    """The create was retried on a 5xx: the server had made the study, so two studies held the
    same tasks, a resume published the draft too, and both were paid (11 submissions for 5 tasks)."""
    state, url = server
    tasks = _tasks()
    state.fail_after_create = 1
    with pytest.raises(ProlificError, match="500 to POST /api/v1/studies/"):
        _backend(url).dispatch(tasks)
    assert [s["status"] for s in state.studies.values()] == ["UNPUBLISHED"]
    _backend(url).dispatch(tasks)  # the resume
    assert [s["status"] for s in state.studies.values()] == ["ACTIVE"]


def test_a_second_study_for_the_same_tasks_is_never_published(server) -> None:
    """Two studies for one batch (an older clicloop repeated a create): the tasks stay with the
    published one, whichever the listing gives first."""
    state, url = server
    tasks = _tasks()
    _backend(url).dispatch(tasks)
    _backend(url)._create(_batch_id("p", tasks), tasks)  # the stray draft
    state.studies = dict(reversed(list(state.studies.items())))  # listed first
    _backend(url).dispatch(tasks)
    assert sorted(s["status"] for s in state.studies.values()) == ["ACTIVE", "UNPUBLISHED"]


def test_a_submission_without_its_participant_is_skipped_and_said(server, caplog) -> None:
    """Found 2026-12-07: a submission listed without its participant became an answer of worker
    '' (paid to nobody); one without an id was dropped without a word."""
    state, url = server
    backend = _backend(url)
    tasks = _tasks()
    backend.dispatch(tasks)
    for _ in range(50):  # until people have submitted
        backend.collect(tasks)
        if len(state.submissions) >= 2:
            break
    nameless = sorted(state.submissions)[0]
    state.submissions[nameless]["participant"] = None
    fresh = _backend(url)
    answers = [a for _ in range(3) for a in fresh.collect(tasks)]
    assert answers and all(a.worker for a in answers) and all(a.external_id != nameless for a in answers)
    assert caplog.text.count("without its id, participant or status") == 1


@pytest.mark.parametrize("server", [prolific_server.Pool(seconds_median=200.0, return_rate=0.0)], indirect=True)
def test_two_live_processes_on_one_journal_pay_each_person_once(server, tmp_path, caplog) -> None:
    """Found 2026-12-07 in re-check: the journal was read once per process, so a running loop and
    a payment script that had both read it paid the same 6 people twice (12 payments). A pay call
    Prolific refused (a 4xx: no money moved) left its key 'started', and that person was skipped
    for ever without a word; a half-written last line blocked every payment."""
    state, url = server
    journal = str(tmp_path / "paid.jsonl")
    a = _backend(url, median_task_seconds=30, payments_journal=journal)
    tasks = _tasks()
    a.dispatch(tasks)
    _answers(a, tasks)
    b = _backend(url, median_task_seconds=30, payments_journal=journal)
    assert len(a.adjustment_payments(dry_run=True)) == len(b.adjustment_payments(dry_run=True)) == 6  # both read it
    state.refuse_pay = 1  # the first pay call is refused: the balance ran out
    with pytest.raises(ProlificError, match="adjustment payments stopped .* after 0 made"):
        a.adjustment_payments()
    assert state.payments == []
    paid = a.adjustment_payments()  # topped up: the refused one is paid too
    assert len(paid) == 6 and b.adjustment_payments() == [] and len(state.payments) == 6
    with open(journal, "a", encoding="utf-8") as f:
        f.write('{"key": "half')  # a process killed while writing, before its pay call
    c = _backend(url, median_task_seconds=30, payments_journal=journal)
    assert c.adjustment_payments() == [] and "half-written line" in caplog.text
    assert c.pay_bonus(paid[0].participant, "0.10", "Thank you.", key="late-bonus", study_id=paid[0].study_id).amount == Decimal("0.10")
    assert len(state.payments) == 7
