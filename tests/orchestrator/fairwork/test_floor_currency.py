"""A wage floor is compared with pay in its own currency only: one rule for the report, `ledger
adjust`, the dashboard and the labor card. Before, a floor of 12.02 EUR against a loop paid in USD
gave "owed 0.00" and no worker below in the report and `ledger adjust` (silently skipped), while
the dashboard and the labor card compared 12.02 with the USD wages (every worker below, 6.59 USD
owed); the report printed "floor 12.02 USD" though a USD floor of 8.00 applied."""

from __future__ import annotations

from decimal import Decimal

from clicloop.orchestrator.config import WageFloor
from clicloop.orchestrator.dashboard.base import Context
from clicloop.orchestrator.dashboard.source import Filters
from clicloop.orchestrator.dashboard.views_people import wages
from clicloop.orchestrator.fairwork.wages import owed, proposed_adjustments
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.reporting.laborcard import labor_card
from clicloop.orchestrator.reporting.report import build_report, render_report
from clicloop.orchestrator.types import Answer, Task

EUR_ONLY = WageFloor(amount=12.02, currency="EUR")
WITH_USD = WageFloor(amount=12.02, currency="EUR", per_backend={"prolific": {"amount": 8.0, "currency": "USD"}})


def _loop(ledger: Ledger, loop: str, backend: str, currency: str) -> None:
    """Two rounds; two workers paid 0.05 for 30 s a task (6.00 an hour): below 12.02 and 8.00."""
    ledger.begin_loop(loop, "h", "{}", 0)
    for r in range(2):
        ledger.start_round(loop, r, f"{loop}-r{r}", 20 + 10 * r, "accuracy", 0.7 + 0.1 * r)
        tasks = [Task(f"{loop}/{r}/i{i}/0", loop, r, f"i{r}-{i}", 0, "p", ("a", "b")) for i in range(10)]
        ledger.record_tasks(tasks, backend)
        ledger.record_answers(loop, backend, [(t, Answer(t.key, f"w{i % 2}", "a", active_s=30.0, reward=0.05, fee=0.0,
                                                          currency=currency), "submitted", None) for i, t in enumerate(tasks)])
        ledger.finish_round(loop, r)
    ledger.start_round(loop, 2, f"{loop}-r2", 40, "accuracy", 0.9)


def _text(rows, totals) -> str:
    from rich.console import Console

    console = Console(width=400, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render_report(rows, totals))
    return console.export_text()


def test_a_floor_in_another_currency_is_not_compared_in_any_view(tmp_path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger, "eur", "simulated", "EUR")
        _loop(ledger, "usd", "prolific", "USD")
        _, eur = build_report(ledger, "eur", EUR_ONLY)
        rows, usd = build_report(ledger, "usd", EUR_ONLY)
        due = owed(ledger, "usd", EUR_ONLY)
        proposals = proposed_adjustments(ledger, "usd", EUR_ONLY)
        card = labor_card(ledger, "usd-r2", EUR_ONLY)
        view = wages(Context(ledger.engine_, Filters(), floor=EUR_ONLY))
    assert eur.owed == Decimal("1.020000") and eur.workers_below_floor == 2  # 12.02 / 12 - 0.50 = 0.5017, up to the cent, x 2
    assert usd.owed is None and usd.fair_cost is None and usd.workers_below_floor is None  # was 0.00 and 0
    assert due["amount"] is None and proposals == [] and "not compared" in due["not_compared"][0]
    text = _text(rows, usd)
    assert "not compared" in text and "floor 12.02 USD" not in text and "currency: USD" in text
    assert card["money"]["currency"] == "USD" and card["money"]["owed"] is None  # was 6.59 USD, the EUR floor read as USD
    assert card["wages_total_time"]["currency"] == "USD" and card["wages_total_time"]["below_floor"] is None
    numbers = {n.key: n for n in view.numbers}
    assert numbers["loop_owed:usd"].value is None and numbers["loop_owed:usd"].text == "not compared"
    assert numbers["loop_owed:eur"].text == "1.02 EUR" and numbers["owed"].text == "1.02 EUR"
    assert numbers["below_floor_total"].value == 2  # the EUR loop's two workers, not the USD loop's
    assert numbers["median_wage_total"].value is None and numbers["median_wage_total"].text == "6.00 EUR/h; 6.00 USD/h"
    assert any("usd / prolific" in note and "not compared" in note for note in view.notes)


def test_a_floor_in_the_pay_currency_applies_with_its_own_amount(tmp_path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger, "usd", "prolific", "USD")
        rows, usd = build_report(ledger, "usd", WITH_USD)
        card = labor_card(ledger, "usd-r2", WITH_USD)
        view = wages(Context(ledger.engine_, Filters(), floor=WITH_USD))
    assert usd.owed == Decimal("0.340000") and usd.workers_below_floor == 2  # 8.00 / 12 - 0.50 = 0.1667, up to the cent, x 2
    assert "(floor 8.00 USD)" in _text(rows, usd)  # it read "floor 12.02 USD"
    assert card["money"]["owed"] == Decimal("0.340000") and card["wages_total_time"]["currency"] == "USD"
    numbers = {n.key: n for n in view.numbers}
    assert numbers["loop_owed:usd"].text == "0.34 USD" and numbers["median_wage_total"].text == "6.00 USD/h"


def test_ledger_adjust_says_a_floor_in_another_currency_is_not_compared(tmp_path, capsys) -> None:
    from clicloop.orchestrator.cli.main import main

    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Ledger(url) as ledger:
        _loop(ledger, "usd", "prolific", "USD")
    main(["ledger", "adjust", "--ledger", url, "--floor", "12.02", "--currency", "EUR"])
    out = capsys.readouterr().out
    assert "every worker earns at least the floor" not in out  # what it said
    assert "usd / prolific: its wage floor is 12.02 EUR/h and its pay in USD" in out and "--currency USD" in out
    main(["ledger", "adjust", "--ledger", url, "--floor", "8", "--currency", "USD"])
    assert "usd: total 0.34 USD" in capsys.readouterr().out


def test_two_currencies_in_view_each_loop_names_its_own(tmp_path) -> None:
    """With a EUR loop and a GBP loop in view, per-loop figures read "9.67 EUR/GBP", table columns
    "income EUR/GBP" over rows in one or the other, and "below the floor 8 of 13" counted the 5
    workers never compared."""
    from clicloop.orchestrator.dashboard.views_cost import forecast_view, learning

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger, "eur", "simulated", "EUR")
        _loop(ledger, "gbp", "event-crowd", "GBP")
        ctx = Context(ledger.engine_, Filters(), floor=EUR_ONLY)
        views = [learning(ctx), wages(ctx), forecast_view(ctx)]
    texts = {n.key: n.text for v in views for n in v.numbers}
    assert "EUR/GBP" not in repr(texts) and texts["fair_cost:eur"].endswith(" EUR")
    assert texts["backend_wage_total:gbp:event-crowd"] == "6.00 GBP/h"
    assert texts["below_floor_total"] == "2 of 2 (2 not compared: a floor in another currency)"
    for table in (t for v in views for t in v.tables if "loop" in t.keys):
        assert "currency" in table.keys and not any("EUR/GBP" in c for c in table.columns), table.caption
        rows = {r[table.keys.index("loop")]: r[table.keys.index("currency")] for r in table.rows}
        assert rows.get("eur", "EUR") == "EUR" and rows.get("gbp", "GBP") == "GBP"


def test_pay_reversed_by_rejections_is_never_summed_across_currencies(tmp_path) -> None:
    """0.08 USD and 0.14 EUR reversed read "worker pay reversed 0.22 EUR/USD"; the model-versions
    table's heading read "cost before it EUR/USD"."""
    from clicloop.orchestrator.dashboard.views_cards import labor_cards
    from clicloop.orchestrator.dashboard.views_people import rejections

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger, "eur", "simulated", "EUR")
        _loop(ledger, "usd", "prolific", "USD")
        assert ledger.review("eur/0/i0/0", accept=False, reason="wrong label, checked against gold", withhold_pay=True)
        assert ledger.review("usd/0/i1/0", accept=False, reason="wrong label, checked against gold", withhold_pay=True)
        ctx = Context(ledger.engine_, Filters(), floor=WITH_USD)
        numbers = {n.key: n for n in rejections(ctx).numbers}
        cards = labor_cards(ctx)
    assert numbers["income_reversed"].text == "0.05 EUR; 0.05 USD" and numbers["income_reversed"].value is None
    (versions,) = [t for t in cards.tables if t.caption == "Model versions"]
    assert "currency" in versions.keys and not any("/" in c for c in versions.columns)
