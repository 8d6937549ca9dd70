"""The ray engine on a local Ray bound to 127.0.0.1: one start, the same picks as the local engine."""


import numpy as np
import pytest

from clicloop.strategies.pools import stream_top_k
from clicloop.strategies.ray_engine import RayEngine
from clicloop.strategies.scores import Margin, RandomSampling

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("strategy", [Margin(), RandomSampling()])
def test_ray_picks_exactly_what_the_local_engine_picks(local_ray, tmp_path, strategy):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((12_000, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    model = LogisticRegression().fit(X[:400], y[:400])
    np.save(tmp_path / "pool.npy", X)
    exclude = np.arange(0, 12_000, 5)
    local = stream_top_k(strategy, model, tmp_path / "pool.npy", 30, np.random.default_rng(7), chunk_size=4096, exclude=exclude)
    engine = RayEngine(num_workers=2, range_rows=2500)
    from_file = engine.top_k(strategy, model, tmp_path / "pool.npy", 30, np.random.default_rng(7), exclude=exclude, chunk_size=1000)
    from_store = engine.top_k(strategy, model, X, 30, np.random.default_rng(7), exclude=exclude, chunk_size=700)
    np.testing.assert_array_equal(local, from_file)
    np.testing.assert_array_equal(local, from_store)
    engine.close()


def test_a_loop_configured_with_the_ray_engine_buys_what_the_local_engine_buys(local_ray, tmp_path):
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.loop import Loop
    from tests.conftest import digits_config

    picks = {}
    for engine in ("local", "ray"):
        url = f"sqlite:///{tmp_path / engine}.db"
        cfg = digits_config(url, loop={"engine": {"name": engine, "num_workers": 2, "range_rows": 300}},
                            strategy={"name": "margin"}, stop={"max_labels": None, "max_rounds": 3})
        Loop(config_from_dict(cfg)).run()
        with Ledger(url) as ledger:
            picks[engine] = [t["item_id"] for r in range(3) for t in ledger.tasks("t", r)]
    assert len(picks["local"]) == 30
    assert picks["ray"] == picks["local"]


def test_the_ray_engine_refuses_a_batch_strategy_when_the_config_loads(tmp_path):
    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.errors import ConfigError
    from clicloop.orchestrator.loop import Loop
    from tests.conftest import digits_config

    cfg = digits_config(f"sqlite:///{tmp_path / 'b.db'}", loop={"engine": {"name": "ray"}})  # the default strategy
    with pytest.raises(ConfigError, match="strategy: {name: margin}.*engine 'local'"):
        Loop(config_from_dict(cfg)).run()


def test_a_ray_client_address_without_ray_client_is_refused_before_anything_is_bought(tmp_path, monkeypatch):
    """Found 2026-12-07: the README's `address: ray://head:10001` bought and paid round 0, then failed
    in round 1 ("Ray Client requires pip package ray[client]"): Ray was first started then."""
    import importlib.util

    from clicloop.orchestrator.config import config_from_dict
    from clicloop.orchestrator.errors import StrategyError
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.loop import Loop
    from tests.conftest import digits_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cfg = digits_config(url, loop={"engine": {"name": "ray", "address": "ray://head.invalid:10001"}},
                        strategy={"name": "margin"})
    with pytest.raises(StrategyError, match=r"loop.engine.address 'ray://head.invalid:10001'.*pip install 'ray\[client\]'"):
        Loop(config_from_dict(cfg)).run()
    with Ledger(url) as ledger:
        assert ledger.loops() == []
