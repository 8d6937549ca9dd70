"""Money in a config is exact: the wage floor (and each backend's floor) is a Decimal, in JSON a
decimal string, never a float (before 2026-12-05 it was the float 12.02)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from clicloop.orchestrator.config import WageFloor
from tests.conftest import digits_config
from clicloop import config_from_dict


def test_the_wage_floor_is_exact_money() -> None:
    floor = WageFloor(amount=12.02, per_backend={"prolific": {"amount": 8.675, "currency": "USD"}})
    assert isinstance(floor.amount, Decimal) and floor.amount == Decimal("12.02")
    assert floor.for_backend("prolific").amount == Decimal("8.675")  # by its repr, not 8.67499999999999982236431605997495353221893310546875
    assert floor.for_backend("simulated").amount == Decimal("12.02")
    assert json.loads(floor.model_dump_json())["amount"] == "12.020000"
    assert WageFloor().amount == Decimal("12.02")


def test_a_config_floor_is_read_exactly_and_named_when_wrong(tmp_path) -> None:
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'l.db'}", wage_floor={"amount": 0.1}))
    assert cfg.wage_floor.amount == Decimal("0.1") and cfg.wage_floor.amount * 3 == Decimal("0.3")
    with pytest.raises(Exception, match="wage_floor.amount"):
        config_from_dict(digits_config(f"sqlite:///{tmp_path / 'l.db'}", wage_floor={"amount": 12.0200001}))
