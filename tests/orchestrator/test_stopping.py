"""The budget stop checks compare exact money: the config's ``stop.max_cost`` is parsed to a
Decimal (a clear error naming the field otherwise), what was spent is the ledger's exact sum, and
a task's price is exact (before 2026-12-04 all three were floats, with a 1e-9 slack)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from clicloop.orchestrator.config import Stop, config_from_dict
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.stopping import Budget, items_affordable, per_task, stop_reason
from tests.conftest import digits_config


def test_max_cost_is_exact_money_and_a_bad_one_names_the_field() -> None:
    assert Stop(max_cost=10.1).max_cost == Decimal("10.1") and isinstance(Stop(max_cost=10.1).max_cost, Decimal)
    assert Stop(max_cost="12.30").max_cost == Decimal("12.3")
    for bad, words in (("ten euros", "amount of money"), (0.0000001, "six decimal places"), (-1, "greater than 0")):
        with pytest.raises(ConfigError, match=words) as caught:
            config_from_dict(digits_config("sqlite:///x.db", stop={"max_cost": bad}))
        assert caught.value.field == "stop.max_cost"


def test_the_money_budget_stops_and_sizes_batches_exactly() -> None:
    stop = Stop(max_cost=0.3)
    spent = Budget(answers=3, cost=Decimal("0.3"), total_hours=0.1, cost_per_task=Decimal("0.1"))
    assert stop_reason(stop, 3, 0.8, spent, [], lambda a, b: 0.0) == "money budget spent (0.30 of 0.3)"
    left = Budget(answers=1, cost=Decimal("0.1"), total_hours=0.1, cost_per_task=Decimal("0.1"))
    assert stop_reason(stop, 1, 0.8, left, [], lambda a, b: 0.0) is None
    assert items_affordable(stop, 10, 1, left) == (2, None)  # 0.2 left pays exactly two tasks of 0.1
    assert items_affordable(stop, 10, 3, left) == (0, "budget left cannot pay for one more item")


def test_a_backends_price_is_read_exactly() -> None:
    class Priced:
        def __init__(self, price):
            self.price = price

        def expected_cost_per_task(self):
            return self.price

    assert per_task(Priced(0.1 + 0.2)) == Decimal("0.3")  # a float price (a third-party backend): by its repr, to the micro-unit
    assert per_task(Priced(Decimal("0.024"))) == Decimal("0.024") and per_task(Priced(None)) is None


def test_a_backend_that_cannot_price_a_task_runs_its_rounds(tmp_path, monkeypatch) -> None:
    """A backend without a price per task (Label Studio paying by the hour) gives ``cost_per_task``
    None: checking whether a round asked the last of the budget must not add a float to the
    ledger's exact cost (a TypeError once money became exact)."""
    from clicloop.backends.simulated import SimulatedCrowd
    from clicloop.orchestrator.loop import Loop

    monkeypatch.setattr(SimulatedCrowd, "expected_cost_per_task", lambda self: None)
    results = Loop(config_from_dict(digits_config(f"sqlite:///{tmp_path / 'l.db'}", stop={"max_labels": 20}))).run()
    assert sum(r.answers for r in results) == 20
    assert results[-1].stop_reason.startswith("label budget spent")
