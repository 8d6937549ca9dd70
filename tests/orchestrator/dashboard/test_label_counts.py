"""Labels are counted one way: the quickstart's summary, the report's cost-to-reach table and the
dashboard's "to reach the baseline" figure and cost-to-reach table give the same answers bought
to reach the same metric (clicloop.orchestrator.reporting.reach; before, the CLI said 70 against
240 and the dashboard 90 against 320 on one ledger: seed labels in one, not in the other)."""

from __future__ import annotations

from clicloop.orchestrator.cli.quickstart import outcome
from clicloop.orchestrator.dashboard.base import Context
from clicloop.orchestrator.dashboard.source import Filters
from clicloop.orchestrator.dashboard.views_cost import learning, marginal
from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger
from clicloop.orchestrator.reporting.reach import default_targets, reach
from clicloop.orchestrator.reporting.report import build_report, report_dict


def test_one_label_count_in_the_cli_the_report_and_the_dashboard(sqlite_ledger: str) -> None:
    loops = ["quickstart-margin", "quickstart-random"]
    with ReadOnlyLedger(sqlite_ledger) as led:
        reports = {lp: build_report(led, lp) for lp in loops}
        ctx = Context(led.engine_, Filters())
        versus = {n.key: n for n in learning(ctx).numbers}
        tables = marginal(ctx).tables
    baseline = next(r.metric for r in reversed(reports["quickstart-random"][0]) if r.metric is not None)
    margin_rows = reports["quickstart-margin"][0]
    cli = outcome("margin", margin_rows, baseline)  # the quickstart's summary, on the report's rows
    got = reach(margin_rows, baseline)
    assert cli.answers_to_target == got.labels == versus["versus:quickstart-margin:quickstart-random"].value
    assert got.labels is not None and got.labels < got.n_labeled  # seed labels are not bought: not counted
    own = reach(reports["quickstart-random"][0], baseline)
    assert f"(baseline: {own.labels} labels" in versus["versus:quickstart-margin:quickstart-random"].text
    for i, lp in enumerate(loops):  # each loop's cost-to-reach table: the report's, row for row
        rows, totals = reports[lp]
        shown = tables[2 * i]
        assert [r[shown.keys.index("labels")] for r in shown.rows] == [x["labels"] for x in report_dict(rows, totals)["reach"]]
        assert [r[shown.keys.index("target")] for r in shown.rows] == default_targets(rows)
