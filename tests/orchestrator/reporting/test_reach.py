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
