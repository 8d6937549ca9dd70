"""The simulated crowd's money is exact: its reward parameter is read as a Decimal (a clear error
naming it otherwise), the loop's price for a task wins, and the fee is the reward's share to the
micro-unit (before 2026-12-04: floats, ``round(reward * fee_rate, 6)``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from clicloop.backends.simulated import SimulatedCrowd
from clicloop.orchestrator.errors import BackendError
from clicloop.orchestrator.types import BackendContext, Task


def _open(**params) -> SimulatedCrowd:
    crowd = SimulatedCrowd(n_workers=3, **params)
    crowd.open(BackendContext(loop="l", labels=("a", "b"), purpose="p", seed=0, truth={"i": "a"}))
    return crowd


def test_rewards_and_fees_are_exact() -> None:
    crowd = _open(reward=0.12, fee_rate=0.2)
    assert crowd.expected_cost_per_task() == Decimal("0.144")
    own, priced = crowd.collect([Task("l/0/i/0", "l", 0, "i", 0, "p", ("a", "b")),
                                 Task("l/0/i/1", "l", 0, "i", 1, "p", ("a", "b"), reward=Decimal("0.123457"))])
    assert (own.reward, own.fee) == (Decimal("0.12"), Decimal("0.024"))
    assert (priced.reward, priced.fee) == (Decimal("0.123457"), Decimal("0.024691"))
    assert all(isinstance(v, Decimal) for v in (own.reward, own.fee, priced.reward, priced.fee))


def test_a_reward_that_is_not_money_names_the_parameter() -> None:
    with pytest.raises(BackendError, match=r"backend.params.reward must be an amount of money"):
        _open(reward="twelve cents")
    with pytest.raises(BackendError, match=r"backend.params.reward must not be negative"):
        _open(reward=-0.01)
