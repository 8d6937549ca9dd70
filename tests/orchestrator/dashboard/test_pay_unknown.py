"""The dashboard says "pay unknown" as the report does (one rule, accounting.pay_unknown): a loop
with answers and not one payment gets no wage, no cost and no owed amount; a paid loop beside it
keeps its figures, owed included."""

from __future__ import annotations

from decimal import Decimal

from clicloop.orchestrator.dashboard.base import Context
from clicloop.orchestrator.dashboard.source import Filters
from clicloop.orchestrator.dashboard.views_cost import learning
from clicloop.orchestrator.dashboard.views_people import wages
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.types import Answer, Task


def _loop(ledger: Ledger, loop: str, reward: float) -> None:
    ledger.begin_loop(loop, "h", "{}", 0)
    for r in range(2):
        ledger.start_round(loop, r, f"{loop}-r{r}", 20 + 10 * r, "accuracy", 0.7 + 0.1 * r)
        tasks = [Task(f"{loop}/{r}/i{i}/0", loop, r, f"i{r}-{i}", 0, "p", ("a", "b")) for i in range(10)]
        ledger.record_tasks(tasks, "inhouse")
        ledger.record_answers(loop, "inhouse", [(t, Answer(t.key, f"w{i % 2}", "a", active_s=30.0, reward=reward, fee=0.0,
                                                            currency="EUR"), "submitted", None) for i, t in enumerate(tasks)])
        ledger.finish_round(loop, r)


def test_the_dashboard_says_pay_unknown_and_shows_owed_wages(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Ledger(url) as ledger:
        _loop(ledger, "unpaid", 0.0)  # in-house annotators whose pay was never given
        _loop(ledger, "paid", 0.02)  # 0.02 EUR for 30 s: 2.40 EUR/h, far below the floor
        ctx = Context(ledger.engine_, Filters())
        view = wages(ctx)
        summary = learning(ctx).tables[0]
    numbers = {n.key: n for n in view.numbers}
    assert numbers["loop_owed:unpaid"].text == "pay unknown" and numbers["loop_owed:unpaid"].value is None
    assert numbers["backend_wage_total:unpaid:inhouse"].text == "pay unknown"
    # the paid loop: each of the two workers is owed 12.02 x 10 x 30 s - 10 x 0.02 = 0.80167 EUR, rounded up to the cent
    assert numbers["loop_owed:paid"].value == Decimal("1.620000") and numbers["loop_owed:paid"].text == "1.62 EUR"
    assert any("Pay unknown for unpaid" in note for note in view.notes)
    cost = dict(zip((r[0] for r in summary.rows), (r[summary.keys.index("cost")] for r in summary.rows)))
    assert cost == {"paid": Decimal("0.400000"), "unpaid": "pay unknown"}


def test_the_labor_card_says_pay_unknown(tmp_path) -> None:
    from clicloop.orchestrator.dashboard.views_cards import labor_cards
    from clicloop.orchestrator.reporting.laborcard import labor_card, render_markdown

    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Ledger(url) as ledger:
        _loop(ledger, "unpaid", 0.0)
        card = labor_card(ledger, "unpaid-r1")
        view = labor_cards(Context(ledger.engine_, Filters()))
    # before: "0.00 EUR paid", every worker "below the floor" at 0.00 /h
    assert card["money"] == {"currency": None, "pay_unknown": True} and card["wages_total_time"]["pay_unknown"]
    assert "Money: pay unknown" in render_markdown(card) and "below the" not in render_markdown(card)
    assert {n.key: n.text for n in view.numbers}["card_cost:unpaid-r1"] == "pay unknown"


def test_the_waiting_view_counts_reviewers_too(tmp_path) -> None:
    """A deployment's reviewers who wait for work wait unpaid, as labelers do: `clicloop report`
    showed the review loop's waiting and the dashboard's waiting view, which says it shows the
    report's figures, left the review loop out."""
    from clicloop.orchestrator.dashboard.views_continuous import waiting_staleness

    url = f"sqlite:///{tmp_path / 'l.db'}"
    loop = "bot:review"
    with Ledger(url) as ledger:
        ledger.begin_loop(loop, "h", "{}", 0)
        ledger.start_round(loop, 0, "v1", 0, "accuracy", None)
        tasks = [Task(f"{loop}/0/p{i}/0", loop, 0, f"p{i}", 0, "Check answers.", ("a", "b")) for i in range(2)]
        ledger.record_tasks(tasks, "sim")
        ledger.record_answers(loop, "sim", [(t, Answer(t.key, "w0", "a", active_s=60.0, wait_s=30.0, reward=0.2, fee=0.0,
                                                        currency="EUR"), "submitted", None) for t in tasks])
        numbers = {n.key: n for n in waiting_staleness(Context(ledger.engine_, Filters())).numbers}
    assert numbers[f"waiting_share:{loop}"].value == 0.5 and numbers[f"waiting_hours:{loop}"].text == "0.02 h"
