"""The one rule on client-reported time and on amounts, and how the loop's answer check and the
ledger apply it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S, MAX_AMOUNT, check_limit, timed_pay
from clicloop.orchestrator.crowd.redundancy import check_answer
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.types import Answer, Task

LABELS = ("a", "b")


@pytest.mark.parametrize("value, why", [
    (1e9, "above the plausibility limit"), (1e300, "above the plausibility limit"), (float("inf"), "not a finite"),
    (float("nan"), "not a finite"), (-1.0, "negative"), ("12", "not a number"), (True, "not a number"),
])
def test_implausible_time_is_quarantined_unpaid_with_the_raw_value(value: object, why: str) -> None:
    pay = timed_pay(value, field="lead_time", hourly_wage=18.0, per_answer=0.5)
    assert (pay.active_s, pay.reward) == (0.0, 0.0) and why in pay.problem and "lead_time" in pay.problem


def test_plausible_time_is_paid_by_the_hour_and_the_limit_is_configurable() -> None:
    pay = timed_pay(1800, field="lead_time", hourly_wage=18.0, per_answer=0.5)
    assert (pay.active_s, pay.reward, pay.problem) == (1800.0, Decimal("9.5"), None)
    odd = timed_pay(37.3, field="lead_time", hourly_wage=18.7)  # 0.19375277... EUR: exact, to the micro-unit
    assert isinstance(odd.reward, Decimal) and str(odd.reward) == "0.193753"
    assert timed_pay(1e9, field="lead_time", hourly_wage=18.0).reward == Decimal(0)  # quarantined: no pay, exact
    assert timed_pay(None, field="lead_time", hourly_wage=18.0).problem is None  # not measured: 0 s, no problem
    assert timed_pay(DEFAULT_MAX_ACTIVE_S + 1, field="lead_time").problem
    assert timed_pay(DEFAULT_MAX_ACTIVE_S + 1, field="lead_time", max_active_s=2 * DEFAULT_MAX_ACTIVE_S).problem is None
    for bad in (0, -5, float("inf"), "8h", None):
        with pytest.raises(ConfigError, match="max_active_s"):
            check_limit(bad)


def _answer(**kw: object) -> Answer:
    return Answer(**{"task_key": "k", "worker": "w", "label": "a", "active_s": 5.0, "reward": 0.1, "fee": 0.0,
                     "currency": "EUR", **kw})  # type: ignore[arg-type]


def test_check_answer_quarantines_a_backend_problem_and_unpayable_amounts() -> None:
    assert check_answer(_answer(problem="lead_time 1e+09 s is above the limit"), LABELS) == (
        "quarantined", "lead_time 1e+09 s is above the limit")
    status, reason = check_answer(_answer(reward=1e13), LABELS)
    assert status == "quarantined" and "1e+13" in reason
    assert check_answer(_answer(reward=MAX_AMOUNT), LABELS) == ("submitted", None)


def test_the_ledger_never_pays_an_amount_it_cannot_hold(tmp_path: Path) -> None:
    """A reward of 1e13 once raised OverflowError inside the ledger's transaction, losing every
    answer of the batch; now it is recorded quarantined and unpaid beside the valid answer."""
    tasks = [Task(f"l/0/i{i}/0", "l", 0, f"i{i}", 0, "p", LABELS) for i in range(2)]
    answers = [_answer(task_key=tasks[0].key, reward=1e13), _answer(task_key=tasks[1].key)]
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        ledger.record_tasks(tasks, "b")
        assert ledger.record_answers("l", "b", [(t, a, *check_answer(a, LABELS)) for t, a in zip(tasks, answers)]) == [0, 1]
        assert ledger.spent("l")["cost"] == Decimal("0.1")
