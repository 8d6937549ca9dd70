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
    crowd = SimulatedCrowd(**{"n_workers": 3, **params})
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


@pytest.mark.parametrize("params", [{"accuracy_mean": 97}, {"n_workers": 0}, {"careless_fraction": 5}, {"fee_rate": 20},
                                    {"n_workers": 2.5}, {"opt_out_rate": "half"}])
def test_a_param_out_of_range_names_itself_and_its_value(params) -> None:
    """Found 2026-12-07: 'accuracy_mean must be strictly between 0 and 1' named no field;
    fee_rate 20 (meant as 20%) was accepted and 40 answers cost 252 EUR for 12 EUR of pay."""
    (name, value), = params.items()
    with pytest.raises(BackendError, match=rf"simulated crowd: backend.params.{name} must be .*not {value!r}"):
        _open(**params)


def test_a_bad_backend_param_stops_the_loop_before_a_ledger_file_exists(tmp_path) -> None:
    from clicloop import Loop, config_from_dict
    from tests.conftest import digits_config

    from clicloop.orchestrator.errors import ConfigError

    cfg = digits_config(f"sqlite:///{tmp_path / 'l.db'}", backend={"name": "simulated", "params": {"accuracy_mean": 97}})
    with pytest.raises(ConfigError, match="backend.params.accuracy_mean must be") as e:
        Loop(config_from_dict(cfg)).run()
    assert e.value.field == "backend.params.accuracy_mean"
    assert not (tmp_path / "l.db").exists()


def test_numpy_numbers_and_decimals_are_numbers() -> None:
    """Found 2026-12-07 (review): the new checks refused np.int64(5), np.float32(0.8) and
    Decimal('0.2'), which the crowd took before (a parameter sweep passes numpy values)."""
    import numpy as np

    crowd = _open(n_workers=np.int64(5), accuracy_mean=np.float32(0.8), fee_rate=Decimal("0.2"))
    assert len(crowd.workers_) == 5
    with pytest.raises(BackendError, match=r"backend.params.n_workers must be a whole number"):
        _open(n_workers=np.float64(2.5))
    with pytest.raises(BackendError, match=r"backend.params.careless_fraction must be a number"):
        _open(careless_fraction=np.bool_(True))
