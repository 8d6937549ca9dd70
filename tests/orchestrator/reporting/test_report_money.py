"""Back-pay is its own line: booking an adjustment changes no round's planned cost, wage or cost
per point, nor the forecast's money, and the report's JSON carries money as exact decimal strings."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal

import pytest

from clicloop.orchestrator.config import WageFloor
from clicloop.orchestrator.fairwork.wages import apply_adjustments, proposed_adjustments
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.money import json_default
from clicloop.orchestrator.reporting.forecast import forecast
from clicloop.orchestrator.reporting.report import build_report, report_dict
from clicloop.orchestrator.types import Answer, Task

FLOOR = WageFloor(amount=12.02, currency="EUR")


def _loop(ledger: Ledger, n_eval: int | None = None) -> None:
    """Six rounds of ten answers at 0.01 EUR (far below the floor) and a rising metric (measured
    on ``n_eval`` evaluation items, when given)."""
    ledger.begin_loop("l", "h", "{}", 0)
    for r in range(6):
        ledger.start_round("l", r, f"l-r{r}", 20 + 10 * r, "accuracy", 0.6 + 0.3 * (1 - 0.7**r), n_eval=n_eval)
        tasks = [Task(f"l/{r}/i{r}-{i}/0", "l", r, f"i{r}-{i}", 0, "p", ("a", "b")) for i in range(10)]
        ledger.record_tasks(tasks, "sim")
        ledger.record_answers("l", "sim", [(t, Answer(t.key, f"w{i % 3}", "a", active_s=6.0, search_s=9.0, qualification_s=60.0,
                                                       reward=0.01, fee=0.002, currency="EUR"), "submitted", None)
                                           for i, t in enumerate(tasks)])
        ledger.finish_round("l", r)


def test_back_pay_is_its_own_line_and_never_a_rounds_price(tmp_path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger)
        rows_before, totals_before = build_report(ledger, "l", FLOOR)
        owed = totals_before.owed
        assert owed > 0 and totals_before.adjustments == 0 and totals_before.fair_cost == totals_before.cost + owed
        apply_adjustments(ledger, proposed_adjustments(ledger, "l", FLOOR), 5)  # booked on the last round, as `ledger adjust`
        rows, totals = build_report(ledger, "l", FLOOR)
    # before the fix the last round's paid wage jumped (back-pay counted as that round's pay) and its cost with it
    assert [(r.cost, r.wage_paid_time, r.cost_per_point) for r in rows] == \
           [(r.cost, r.wage_paid_time, r.cost_per_point) for r in rows_before]
    assert rows[-1].adjustments == owed and sum(r.adjustments for r in rows) == totals.adjustments == owed
    assert totals.cost == totals_before.cost and totals.owed == 0 and totals.fair_cost == totals_before.fair_cost
    assert totals.wage_total_time >= Decimal("12.02")  # back-pay counts in what the workers received
    assert forecast(rows, 0.95).cost_to_target == forecast(rows_before, 0.95).cost_to_target
    text = json.dumps(report_dict(rows, totals), default=json_default)
    data = json.loads(text)
    assert data["totals"]["adjustments"] == str(owed)  # exact, e.g. "1.230000", never 1.2300000000000002
    assert all(isinstance(r[k], (str, type(None))) for r in data["rounds"] for k in ("cost", "planned_pay", "adjustments", "wage_paid_time"))
    # what the workers received is named as the labor card names it, and is what the wages divide (it read
    # "income" and held the planned pay alone, while the wages counted back-pay too)
    t = data["totals"]
    assert "income" not in t and Decimal(t["paid_to_workers"]) == Decimal(t["planned_pay"]) + Decimal(t["adjustments"])
    assert Decimal(t["wage_paid_time"]) == (Decimal(t["paid_to_workers"]) / Decimal(repr(t["active_hours"]))).quantize(Decimal("0.000001"))
    assert all(isinstance(v, (str, type(None))) for v in (json.loads(text)["totals"][k] for k in ("cost", "owed", "fair_cost")))
    assert asdict(totals)["currency"] == "EUR"


def test_an_earlier_versions_card_counts_back_pay_booked_after_it(tmp_path) -> None:
    """Back-pay is booked on the last round that bought answers, so the card of an earlier version
    (its work only) went on saying "still owed" after every worker had been paid up to the floor
    (1.93 EUR on a loop whose whole debt had been 1.81 EUR). What a worker got later pays their
    earlier debt first."""
    from clicloop.orchestrator.reporting.laborcard import labor_card

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger)
        owed_then = labor_card(ledger, "l-r3", FLOOR)["money"]["owed"]
        apply_adjustments(ledger, proposed_adjustments(ledger, "l", FLOOR), 5)
        card = labor_card(ledger, "l-r3", FLOOR)
        assert proposed_adjustments(ledger, "l", FLOOR) == []
    assert owed_then > 0 and card["money"]["owed"] == 0  # was owed_then, unchanged by the payments
    assert card["money"]["retroactive"] == 0  # booked after this version: not its pay


def test_a_review_loop_reports_its_work_without_a_learning_curve(tmp_path) -> None:
    """A deployment's review loop printed an empty "cost to reach" table and "metric - -> -"."""
    from tests.orchestrator.fairwork.test_floor_currency import _text

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        ledger.begin_loop("bot:review", "h", "{}", 0)
        ledger.start_round("bot:review", 0, "v1", 0, "accuracy", None)
        task = Task("bot:review/0/p0/0", "bot:review", 0, "p0", 0, "Check answers.", ("a", "b"))
        ledger.record_tasks([task], "sim")
        ledger.record_answers("bot:review", "sim", [(task, Answer(task.key, "w0", "a", active_s=60.0, reward=0.2, fee=0.0,
                                                                  currency="EUR"), "submitted", None)])
        text = _text(*build_report(ledger, "bot:review", FLOOR))
    assert "cost to reach" not in text and "metric -" not in text and "clicloop deploy status" in text
    assert "total: 1 answers" in text and "12.00 EUR/h on paid time" in text


def test_back_pay_booked_in_a_round_without_answers_is_counted(tmp_path) -> None:
    """A loop that stopped in a fresh round (only its last waiting recorded there) had its back-pay
    booked on that round by ``ledger adjust``: the report said back-pay 0.00, owed 0.00 and nobody
    below the floor at 10.18 EUR/h, while the dashboard counted 1.62 EUR (the round's money was
    never read for a round without answers)."""
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger)
        ledger.start_round("l", 6, "l-r6", 80, "accuracy", 0.9)  # the stop round: no answers
        ledger.finish_round("l", 6, stop_reason="label budget spent")
        assert ledger.pay("l/back/w0", "l", 6, "sim", ledger.pseudonym("sim", "w0"), "adjustment", 1.25, "EUR")
        effort = ledger.effort_by_round("l")
        assert effort[6]["adjustment"] == Decimal("1.25") and effort[6]["answers"] == 0
        totals = build_report(ledger, "l", FLOOR)[1]
    assert totals.adjustments == Decimal("1.25") and totals.paid_to_workers == totals.planned_pay + Decimal("1.25")


def test_the_card_of_the_version_a_loop_stopped_with_counts_what_its_stop_round_holds(tmp_path) -> None:
    """The waiting after the last answers and back-pay are booked on the stop round; the card of
    the version the loop stopped with counted the rounds before it only: 0.700 h and 1.22 EUR owed
    where the report and the dashboard said 0.748 h and 1.62 EUR."""
    from clicloop.orchestrator.ledger.continuous import record_waits
    from clicloop.orchestrator.reporting.laborcard import labor_card

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger)
        ledger.start_round("l", 6, "l-r6", 80, "accuracy", 0.9)  # the stop round: no answers
        record_waits(ledger, "l", "sim", 6, {"w0": 600.0, "w1": 300.0})
        ledger.finish_round("l", 6, stop_reason="label budget spent")
        totals = build_report(ledger, "l", FLOOR)[1]
        card = labor_card(ledger, "l-r6", FLOOR)
        earlier = labor_card(ledger, "l-r5", FLOOR)
    assert card["hours"]["total"] == pytest.approx(totals.total_hours, abs=1e-9) and card["money"]["owed"] == totals.owed
    assert earlier["hours"]["total"] < totals.total_hours  # a version before the stop: its own rounds only


def test_the_dashboard_filtered_to_a_version_counts_what_its_card_counts(tmp_path) -> None:
    """After back-pay booked on the last round, the dashboard filtered to an earlier version said
    1.24 USD owed and its labor card 0.48: the card lets later back-pay pay that work's debt first,
    the filter did not (docs/dashboard.md: the filter shows exactly what the card counts)."""
    from clicloop.orchestrator.dashboard.source import Filters
    from clicloop.orchestrator.dashboard.views import build_views
    from clicloop.orchestrator.reporting.laborcard import labor_card

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger)
        half = proposed_adjustments(ledger, "l", FLOOR)
        apply_adjustments(ledger, half[: len(half) // 2 + 1], 5)  # some workers paid up, others still owed
        for version in ("l-r3", "l-r5"):
            card = labor_card(ledger, version, FLOOR)["money"]
            (wages,) = build_views(ledger.engine_, Filters(model_version=version), ["wages"], floor=FLOOR)
            shown = {n.key: n.value for n in wages.numbers}
            assert shown["loop_owed:l"] == card["owed"], version
