"""One definition of "labels to reach X" for every view (clicloop.orchestrator.reporting.reach)."""

from __future__ import annotations

from decimal import Decimal

from clicloop.orchestrator.reporting.reach import default_targets, reach, reach_table

ROWS = [  # what each round bought AFTER fitting its model (the report's rows)
    {"round_no": 0, "n_labeled": 20, "metric": 0.70, "answers": 10, "total_hours": 0.5, "cost": Decimal("1.20")},
    {"round_no": 1, "n_labeled": 30, "metric": 0.80, "answers": 10, "total_hours": 0.25, "cost": Decimal("1.10")},
    {"round_no": 2, "n_labeled": 40, "metric": 0.80, "answers": 10, "total_hours": 0.25, "cost": Decimal("1.30")},
    {"round_no": 3, "n_labeled": 50, "metric": 0.95768, "answers": 10, "total_hours": 0.25, "cost": Decimal("1.40")},
]


def test_labels_to_reach_are_the_answers_bought_before_the_first_round_that_measured_it() -> None:
    got = reach(ROWS, 0.9)
    # seed labels (20) are not counted; the round that reached it bought its answers AFTER its model
    assert (got.round_no, got.n_labeled, got.labels, got.hours, got.cost) == (3, 50, 30, 1.0, Decimal("3.60"))
    assert reach(ROWS, 0.99).round_no is None and reach(ROWS, 0.99).labels is None
    assert reach(ROWS, 0.70).labels == 0 and reach(ROWS, 0.70).cost == 0


def test_the_sampling_interval_brackets_the_labels_and_the_best_round_reaches_its_own_row() -> None:
    got = reach(ROWS, 0.82, eval_size=100)  # 0.80 +- 1.28 x 4 points reaches 0.82 optimistically
    assert got.labels_low == 10 and got.labels == 30 and got.labels_high == 30
    targets = default_targets(ROWS)
    assert targets == [0.75, 0.8, 0.85, 0.9, 0.95, 0.9576]
    assert all(x.round_no is not None for x in reach_table(ROWS, targets))  # no "not yet" for the best metric itself


def test_the_interval_comes_from_the_sizes_the_ledger_recorded_per_round() -> None:
    measured = [{**r, "n_eval": 100} for r in ROWS]
    assert reach(measured, 0.82) == reach(ROWS, 0.82, eval_size=100)
    assert reach(measured, 0.82).labels_low == 10
    unknown = [{**r, "n_eval": None if r["round_no"] == 1 else 100} for r in ROWS]  # one measured round's size unknown
    assert reach(unknown, 0.82).labels_low is None and reach(unknown, 0.82).labels == 30


def test_the_ledger_records_each_rounds_evaluation_size_and_the_report_carries_it(tmp_path) -> None:
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.reporting.report import build_report, report_dict
    from tests.orchestrator.reporting.test_report_money import _loop

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        _loop(ledger, n_eval=50)
        assert [r["n_eval"] for r in ledger.rounds("l")] == [50] * 6
        rows, totals = build_report(ledger, "l")
    reached = [x for x in report_dict(rows, totals)["reach"] if x["round_no"] is not None]
    assert reached and all(x["labels_low"] is not None and x["labels_low"] <= x["labels"] for x in reached)
