"""End to end in real headless Chromium, on a SQLite and a PostgreSQL ledger made by a real
quickstart run (plus reviews and a post-deployment deployment): every view loads, the numbers on
the page equal the ledger's accounting (clicloop.orchestrator.ledger.accounting, clicloop.orchestrator.reporting.report,
clicloop.orchestrator.reporting.laborcard, clicloop.orchestrator.postdeploy.metrics), the console shows no errors, and
screenshots are kept."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from clicloop.orchestrator.dashboard.views import VIEWS
from tests.orchestrator.dashboard.conftest import DEPLOYMENT, Watched, docs_screenshot

pytestmark = pytest.mark.integration


def cells(page: Any, table: str, col: str) -> list[str]:
    return page.eval_on_selector_all(f'table[data-table="{table}"] td[data-col="{col}"]', "els => els.map(e => e.textContent)")


def number(page: Any, key: str) -> str:
    return page.locator(f'.num[data-key="{key}"] dd').inner_text()


def value(page: Any, key: str) -> float:
    return float(page.locator(f'.num[data-key="{key}"]').get_attribute("data-value"))


def tag(url: str) -> str:
    return "pg" if url.startswith("postgresql") else "sqlite"


@pytest.mark.parametrize("name", list(VIEWS))
def test_each_view_loads_without_console_errors(server: str, quickstart_ledger: str, watched: Watched, artifacts: Path,
                                                name: str) -> None:
    response = watched.open(f"{server}/view/{name}")
    assert response.status == 200
    section = watched.page.locator(f"section#{name}")
    assert section.count() == 1
    n_figs = watched.page.locator(f"section#{name} .fig").count()
    assert n_figs > 0  # the ledger has data for every view, post-deployment included
    assert watched.page.locator(f"section#{name} .fig .main-svg").count() >= n_figs  # plotly.js drew each one
    assert watched.page.locator(f"section#{name} .empty").count() == 0
    section.screenshot(path=str(artifacts / f"{tag(quickstart_ledger)}-view-{name}.png"))
    assert watched.errors == []
    assert all(u.startswith(server) for u in watched.requests), [u for u in watched.requests if not u.startswith(server)]


def test_page_numbers_equal_the_ledger(server: str, watched: Watched, quickstart_ledger: str, artifacts: Path) -> None:
    from sqlalchemy import func, select

    from clicloop.orchestrator.dashboard.source import ReadOnlyLedger
    from clicloop.orchestrator.reporting.laborcard import labor_card
    from clicloop.orchestrator.ledger import accounting
    from clicloop.orchestrator.ledger import schema as s
    from clicloop.orchestrator.postdeploy import DeploymentStore
    from clicloop.orchestrator.postdeploy import metrics
    from clicloop.orchestrator.reporting.report import build_report, forecasts

    watched.open(f"{server}/")
    page = watched.page
    with ReadOnlyLedger(quickstart_ledger) as led:
        engine = led.engine_
        every = led.loops()
        loops = [lp for lp in every if not lp.endswith(":review")]
        reports = {lp: build_report(led, lp) for lp in loops}
        predicted = forecasts(led, reports)
        workers = [w for lp in every for w in accounting.by_worker(engine, lp)]
        backends = [b for lp in every for b in accounting.by_backend(engine, lp)]
        unpaid = [accounting.unpaid_by_kind(engine, lp) for lp in every]
        cards = {lp: labor_card(led, reports[lp][0][-1].model_version) for lp in loops}
        store = DeploymentStore(led, DEPLOYMENT)
        audit, review = metrics.audit_error_rate(store), metrics.errors_fixed_per_hour(store)
        with engine.connect() as conn:
            rejected = conn.execute(select(func.count()).select_from(s.reviews).where(s.reviews.c.decision == "reject")).scalar_one()
    assert loops == ["quickstart-margin", "quickstart-random"] and every[-1] == f"{DEPLOYMENT}:review"

    # learning curve: the summary table and the plotted points equal the report
    assert cells(page, "learning-0", "loop") == loops
    assert cells(page, "learning-0", "metric") == [f"{reports[lp][1].final_metric:.4f}" for lp in loops]
    assert cells(page, "learning-0", "hours") == [f"{reports[lp][1].total_hours:.2f}" for lp in loops]
    assert cells(page, "learning-0", "cost") == [f"{reports[lp][1].cost:.2f}" for lp in loops]
    plotted = page.evaluate("document.getElementById('fig-learning-0').data.map(t => [t.name, t.x, t.y])")
    assert len(plotted) == len(loops)
    for (name, xs, ys), lp in zip(plotted, loops):
        assert name.startswith(lp)
        assert xs == [r.n_labeled for r in reports[lp][0]]
        assert ys == pytest.approx([r.metric for r in reports[lp][0]], abs=1e-12)
    assert "baseline" in plotted[1][0]  # the random loop is drawn as the baseline

    # marginal cost per point per round equals the report's (each loop: its cost-to-reach table, then its rounds)
    for i, lp in enumerate(loops):
        assert cells(page, f"marginal-{2 * i + 1}", "cost_per_point") == [
            "-" if r.cost_per_point is None else f"{r.cost_per_point:,.2f}" for r in reports[lp][0]]
        assert cells(page, f"marginal-{2 * i + 1}", "hours_per_point") == [
            "-" if r.hours_per_point is None else f"{r.hours_per_point:,.3f}" for r in reports[lp][0]]

    # the forecast: the same target and figures as `clicloop report`
    for lp in loops:
        fc = predicted[lp]
        assert value(page, f"target:{lp}") == pytest.approx(fc["target"])
        if fc["hours"] is None:
            assert number(page, f"forecast_hours:{lp}") == fc["status"]
        else:
            expected = math.inf if fc["hours"]["point"] is None else fc["hours"]["point"]  # JSON has no infinity: null
            assert value(page, f"forecast_hours:{lp}") == pytest.approx(expected, rel=1e-9)
            raw = page.locator(f'.num[data-key="forecast_cost:{lp}"]').get_attribute("data-value")
            assert raw == ("" if fc["cost"]["point"] is None else str(fc["cost"]["point"]))  # money: the same exact decimal
    assert cells(page, "forecast-0", "status") == [predicted[lp]["status"] for lp in loops]

    # wages per backend and per worker equal accounting.by_backend / by_worker (review work included)
    shown_b = {(lp, b): (paid, total) for lp, b, paid, total in zip(*(cells(page, "wages-0", c) for c in (
        "loop", "backend", "wage_paid_time", "wage_total_time")))}
    assert shown_b == {(b["loop"], b["backend"]): (f"{b['wage_paid_time']:.2f}", f"{b['wage_total_time']:.2f}") for b in backends}
    shown = dict(zip(zip(cells(page, "wages-1", "loop"), cells(page, "wages-1", "worker")), cells(page, "wages-1", "wage_total_time")))
    assert shown == {(w["loop"], w["worker"]): f"{w['wage_total_time']:.2f}" for w in workers}
    assert number(page, "below_floor_total") == f"{sum(w['wage_total_time'] < 12.02 for w in workers)} of {len(workers)}"
    scatter = page.evaluate("document.getElementById('fig-wages-1').data.reduce((n, t) => n + t.x.length, 0)")
    assert scatter == len(workers)

    # unpaid overhead by kind equals accounting.unpaid_by_kind (summed over the loops)
    for kind in ("search", "wait", "returned", "qualification"):
        assert number(page, f"unpaid:{kind}") == f"{sum(u[kind] for u in unpaid):,.2f} h"

    # rejections and their reasons
    assert number(page, "rejected") == str(rejected) == "3"
    assert dict(zip(cells(page, "rejections-0", "reason"), cells(page, "rejections-0", "count"))) == {
        "answer contradicts the gold item": "2", "submitted in under a second": "1"}

    # labor cards of the latest versions
    for lp, card in cards.items():
        v = card["model_version"]
        assert number(page, f"card_people:{v}") == str(card["people"])
        assert number(page, f"card_hours:{v}") == f"{card['hours']['total']:,.2f} h"
        assert number(page, f"card_cost:{v}") == f"{card['money']['total_cost']:,.2f} {card['money']['currency']}"

    # post-deployment: reviews, errors fixed per hour and the audited error rate equal postdeploy.metrics
    assert number(page, f"reviews:{DEPLOYMENT}") == f"{review['reviews']:,}"
    assert number(page, f"errors_fixed:{DEPLOYMENT}") == f"{review['errors_fixed']:,}"
    assert value(page, f"review_hours:{DEPLOYMENT}") == pytest.approx(review["hours"], rel=1e-9)
    assert value(page, f"errors_per_hour:{DEPLOYMENT}") == pytest.approx(review["per_hour"], rel=1e-9)
    assert number(page, f"error_rate:{DEPLOYMENT}") == (
        f"{100 * audit.rate:.1f}% ({100 * audit.low:.1f}–{100 * audit.high:.1f}%, n={audit.n})")
    assert sum(int(x) for x in cells(page, "postdeploy-1", "audited")) == audit.n
    assert sum(int(x) for x in cells(page, "postdeploy-1", "errors")) == audit.errors
    assert len(cells(page, "postdeploy-1", "day")) >= 3  # the error rate over time, not one point
    drawn = page.evaluate("document.getElementById('fig-postdeploy-0').data[0].y")
    assert [f"{y:.1f}" for y in drawn] == [t for t in cells(page, "postdeploy-1", "rate") if t != "-"]

    page.screenshot(path=str(artifacts / f"{tag(quickstart_ledger)}-page-full.png"), full_page=True)
    if tag(quickstart_ledger) == "sqlite":
        for name in ("learning", "forecast", "wages", "unpaid", "postdeploy"):
            docs_screenshot(page, f"section#{name}", name)
    assert watched.errors == []


def test_filters_narrow_every_view(server: str, watched: Watched, quickstart_ledger: str) -> None:
    from clicloop.orchestrator.dashboard.source import ReadOnlyLedger
    from clicloop.orchestrator.ledger import accounting

    watched.open(f"{server}/?loop=quickstart-random&backend=simulated")
    page = watched.page
    with ReadOnlyLedger(quickstart_ledger) as led:
        workers = accounting.by_worker(led.engine_, "quickstart-random")
    assert cells(page, "learning-0", "loop") == ["quickstart-random"]
    assert sorted(cells(page, "wages-1", "worker")) == sorted(w["worker"] for w in workers)
    assert number(page, "rejected") == "0"  # the rejections were in the margin loop
    assert "No post-deployment review in scope" in page.locator('[data-empty="postdeploy"]').inner_text()

    watched.open(f"{server}/?model_version=quickstart-margin-r3")
    assert cells(page, "laborcards-0", "model_version") == [f"quickstart-margin-r{i}" for i in range(4)]
    assert page.locator('.num[data-key="card_people:quickstart-margin-r3"]').count() == 1

    watched.open(f"{server}/?loop={DEPLOYMENT}:review")
    assert "No round in scope" in page.locator('[data-empty="learning"]').inner_text()  # review work has no learning curve
    assert set(cells(page, "wages-0", "loop")) == {f"{DEPLOYMENT}:review"}
    assert page.locator(f'.num[data-key="reviews:{DEPLOYMENT}"]').count() == 1

    watched.open(f"{server}/?date_to=2000-01-01")
    assert "No round in scope" in page.locator('[data-empty="learning"]').inner_text()
    assert "No post-deployment review in scope" in page.locator('[data-empty="postdeploy"]').inner_text()
    assert page.locator("form.filters select[name=loop] option").count() == 4  # all + two loops + the review loop
    assert watched.errors == []

    response = watched.page.goto(f"{server}/?loop=nope")  # a clear message, not a stack trace
    assert response.status == 404 and "loops there: assistant:review, quickstart-margin" in watched.page.content()


def test_narrow_window_reflows(server: str, quickstart_ledger: str, browser: Any, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    w = Watched(page)
    w.open(f"{server}/")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.locator("section#learning").screenshot(path=str(artifacts / f"{tag(quickstart_ledger)}-narrow-learning.png"))
    if tag(quickstart_ledger) == "sqlite":
        docs_screenshot(page, "section#wages", "narrow-wages")
    widths = page.evaluate("[...document.querySelectorAll('.fig .main-svg')].map(s => s.getBoundingClientRect().width)")
    context.close()
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px in a 390px window"
    assert widths and max(widths) <= 390
    assert w.errors == []


def test_report_html_opens_offline(quickstart_ledger: str, browser: Any, tmp_path: Path, artifacts: Path) -> None:
    from typer.testing import CliRunner

    from clicloop.orchestrator.cli.main import app

    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--ledger", quickstart_ledger, "--html", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(https?:)?//", html)  # nothing to fetch
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = context.new_page()
    blocked: list[str] = []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else (blocked.append(route.request.url), route.abort()))
    w = Watched(page)
    w.open(out.as_uri())
    page.screenshot(path=str(artifacts / f"{tag(quickstart_ledger)}-report-html.png"))
    sections = page.eval_on_selector_all("section.view", "els => els.map(e => e.id)")
    n_drawn = page.locator(".fig .main-svg").count()
    n_figs = page.locator(".fig").count()
    context.close()
    assert blocked == [] and [u for u in w.requests if not u.startswith("file://")] == []
    assert sections == list(VIEWS)
    assert n_figs > 0 and n_drawn >= n_figs
    assert w.errors == []
