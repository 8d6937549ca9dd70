"""One ledger, five views, one set of numbers: a quickstart, a deployment's review work and an
applied wage-floor adjustment, then `clicloop report` (text), `report --format json`, the HTML
report (opened in Chromium), the live dashboard (Chromium) and the labor card must agree on
labels, hours, planned cost, back-pay, owed wages, fair cost, wages and the cost-to-reach table
(with the labels' interval from the evaluation set's sampling error). Money is compared as exact decimal
strings wherever a view carries it unrounded (JSON, data-value); text to the cent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator.dashboard.conftest import DEPLOYMENT, Watched, fill_ledger
from tests.support.threaded_server import serve_in_thread

pytestmark = pytest.mark.integration
ADJUSTED, OWING = "quickstart-random", "quickstart-margin"  # back-pay applied to one loop, still owed on the other


def clicloop(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "clicloop", *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def adjusted_ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    where = tmp_path_factory.mktemp("cross")
    url = f"sqlite:///{where / 'ledger.db'}"
    fill_ledger(url, seed=1)
    _extra_answer(url, OWING)
    out = clicloop("ledger", "adjust", "--ledger", url, "--loop", ADJUSTED, "--loop", f"{DEPLOYMENT}:review", "--floor", "12.02",
                   "--currency", "EUR", "--apply", cwd=where)
    assert "recorded" in out
    return url, where


def _extra_answer(url: str, loop: str) -> None:
    """A second person's answer to one of ``loop``'s tasks (as Label Studio reports one): every view
    counts it as an answer, its hours and its pay."""
    from sqlalchemy import select

    from clicloop.orchestrator.crowd.extra import record_extras
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.ledger import schema as s
    from clicloop.orchestrator.types import Answer

    with Ledger(url) as ledger:
        with ledger.engine_.connect() as conn:
            first = conn.execute(select(s.assignments).where(s.assignments.c.loop == loop, s.assignments.c.round_no == 1,
                                                             s.assignments.c.status == "submitted")).first()._mapping
        extra = Answer(first["task_key"], "second-person", first["label"], active_s=95.0, reward=Decimal("0.17"),
                       fee=Decimal("0.03"), currency="EUR", external_id="x1", event="extra")
        assert record_extras(ledger, loop, first["backend"], [first["label"]], [extra]) == 1


@pytest.fixture(scope="module")
def live(adjusted_ledger: tuple[str, Path]) -> Iterator[str]:
    from clicloop.orchestrator.dashboard.app import create_app

    with serve_in_thread(create_app(adjusted_ledger[0]), startup_timeout_s=30) as url:
        yield url


def page_figures(page: Any, loops: list[str]) -> dict[str, dict[str, Any]]:
    """The figures a page shows per loop, read from data-value (exact) where it carries money."""
    def col(table: str, key: str) -> list[str]:
        return page.eval_on_selector_all(f'table[data-table="{table}"] td[data-col="{key}"]',
                                         "els => els.map(e => e.getAttribute('data-value'))")

    def num(key: str) -> str:
        return page.locator(f'.num[data-key="{key}"]').get_attribute("data-value")

    out: dict[str, dict[str, Any]] = {}
    summary = dict(zip(col("learning-0", "loop"), zip(col("learning-0", "n_labeled"), col("learning-0", "hours"),
                                                       col("learning-0", "cost"), col("learning-0", "adjustment"),
                                                       col("learning-0", "owed"), col("learning-0", "fair_cost"))))
    backends = dict(zip(col("wages-0", "loop"), col("wages-0", "wage_total_time")))
    for i, lp in enumerate(loops):
        n_labeled, hours, cost, adjusted, owed, fair = summary[lp]
        per_round = f"marginal-{2 * i + 1}"
        assert Decimal(owed) == Decimal(num(f"loop_owed:{lp}")) and Decimal(fair) == Decimal(num(f"fair_cost:{lp}")), lp
        out[lp] = {"n_labeled": int(n_labeled), "hours": float(hours), "cost": Decimal(cost), "adjustments": Decimal(adjusted),
                   "answers": sum(int(x) for x in col(per_round, "answers")), "owed": Decimal(num(f"loop_owed:{lp}")),
                   "fair_cost": Decimal(fair), "wage_total_time": Decimal(backends[lp]),
                   "reach": [int(x) if x else None for x in col(f"marginal-{2 * i}", "labels")],
                   "reach_interval": col(f"marginal-{2 * i}", "labels_interval")}
    return out


def interval(x: dict[str, Any]) -> str:
    """A cost-to-reach row's labels interval as the text report and the pages write it."""
    if x["labels_low"] is None:
        return "-"
    return f"{x['labels_low']}-{x['labels_high']}" if x["labels_high"] is not None else f"{x['labels_low']}+"


def test_report_json_html_dashboard_and_labor_card_agree(adjusted_ledger: tuple[str, Path], live: str, browser: Any) -> None:
    url, where = adjusted_ledger
    loops = [OWING, ADJUSTED]
    report = json.loads(clicloop("report", "--ledger", url, "--format", "json", cwd=where))
    for lp in loops:  # JSON money is exact decimal strings with the currency named, never a float
        totals = report[lp]["totals"]
        assert report[lp]["currency"] == totals["currency"] == "EUR"
        for key in ("cost", "planned_pay", "paid_to_workers", "adjustments", "owed", "fair_cost", "wage_total_time"):
            assert isinstance(totals[key], str) and Decimal(totals[key]) == Decimal(totals[key]).quantize(Decimal("0.000001"))
    t = {lp: report[lp]["totals"] for lp in loops}
    assert Decimal(t[ADJUSTED]["adjustments"]) > 0 and Decimal(t[ADJUSTED]["owed"]) == 0
    assert Decimal(t[OWING]["adjustments"]) == 0 and Decimal(t[OWING]["owed"]) > 0
    for lp in loops:
        assert Decimal(t[lp]["fair_cost"]) == Decimal(t[lp]["cost"]) + Decimal(t[lp]["adjustments"]) + Decimal(t[lp]["owed"])
    # back-pay is its own line: no round's planned cost carries it
    assert sum(Decimal(r["adjustments"]) for r in report[ADJUSTED]["rounds"]) == Decimal(t[ADJUSTED]["adjustments"])
    assert sum(Decimal(r["cost"]) for r in report[ADJUSTED]["rounds"]) == Decimal(t[ADJUSTED]["cost"])

    expected = {lp: {"n_labeled": report[lp]["rounds"][-1]["n_labeled"], "hours": t[lp]["total_hours"],
                     "cost": Decimal(t[lp]["cost"]), "adjustments": Decimal(t[lp]["adjustments"]), "answers": t[lp]["answers"],
                     "owed": Decimal(t[lp]["owed"]), "fair_cost": Decimal(t[lp]["fair_cost"]),
                     "wage_total_time": Decimal(t[lp]["wage_total_time"]), "reach": [x["labels"] for x in report[lp]["reach"]],
                     "reach_interval": [interval(x) for x in report[lp]["reach"]]} for lp in loops}
    for lp in loops:  # the evaluation set's size is in the ledger: every reached target has its sampling interval
        reached = [x for x in report[lp]["reach"] if x["round_no"] is not None]
        assert reached and all(x["labels_low"] is not None and x["labels_low"] <= x["labels"] for x in reached), lp
        assert all(x["labels_high"] is None or x["labels"] <= x["labels_high"] for x in reached), lp

    # the text report says the same, to the cent
    for lp in loops:
        text = clicloop("report", "--ledger", url, "--loop", lp, cwd=where)
        money = re.search(r"planned cost ([\d,.]+) EUR .*back-pay booked ([\d,.]+) EUR, still owed ([\d,.]+) EUR; "
                          r"fair cost ([\d,.]+) EUR", text)
        assert money, text
        assert [Decimal(x.replace(",", "")) for x in money.groups()] == [
            Decimal(t[lp][k]).quantize(Decimal("0.01")) for k in ("cost", "adjustments", "owed", "fair_cost")]
        wage = re.search(r"([\d,.]+) EUR/h counting unpaid time", text)
        assert wage and Decimal(wage.group(1)) == Decimal(t[lp]["wage_total_time"]).quantize(Decimal("0.01"))
        assert f"total: {t[lp]['answers']} answers" in text
        for x in report[lp]["reach"]:  # the cost-to-reach rows, with their labels' interval
            assert re.search(rf"{x['target']:.4f} .*? {x['labels'] if x['labels'] is not None else '-'} .*? "
                             rf"{re.escape(interval(x))} ", text), (lp, x, text)

    def check(page_numbers: dict[str, dict[str, Any]], where_from: str) -> None:
        for lp in loops:
            got = page_numbers[lp]
            want = expected[lp]
            keys = ("n_labeled", "cost", "adjustments", "answers", "owed", "fair_cost", "reach", "reach_interval")
            assert {k: got[k] for k in keys} == {k: want[k] for k in keys}, (where_from, lp)
            assert got["hours"] == pytest.approx(want["hours"], rel=1e-9), (where_from, lp)
            # the same wage to the cent (one SQL sum of seconds against the report's sum of per-round hours)
            assert got["wage_total_time"].quantize(Decimal("0.01")) == want["wage_total_time"].quantize(Decimal("0.01"))

    html = where / "report.html"
    clicloop("report", "--ledger", url, "--html", str(html), cwd=where)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page())
        watched.open(html.as_uri())
        check(page_figures(watched.page, loops), "HTML report")
        watched.open(f"{live}/")
        check(page_figures(watched.page, loops), "live dashboard")
        assert watched.errors == []
    finally:
        context.close()

    # the labor card of each loop's latest model: the work before it is all the loop's work (the last round buys nothing)
    for lp in loops:
        version = report[lp]["rounds"][-1]["model_version"]
        clicloop("labor-card", "--ledger", url, "--model-version", version, "--out", str(where / lp), cwd=where)
        card = json.loads((where / f"{lp}.json").read_text(encoding="utf-8"))
        m = card["money"]
        assert m["currency"] == "EUR" and all(isinstance(m[k], str) for k in ("paid_to_workers", "retroactive", "total_cost", "owed"))
        assert card["labels"] == {"trained_on": expected[lp]["n_labeled"], "bought_answers": expected[lp]["answers"]}
        assert card["hours"]["total"] == pytest.approx(expected[lp]["hours"], rel=1e-9)
        assert Decimal(m["planned_cost"]) == expected[lp]["cost"]
        assert Decimal(m["retroactive"]) == expected[lp]["adjustments"]
        assert Decimal(m["owed"]) == expected[lp]["owed"]
        assert Decimal(m["total_cost"]) == expected[lp]["cost"] + expected[lp]["adjustments"]
        assert Decimal(m["fair_cost"]) == expected[lp]["fair_cost"]
