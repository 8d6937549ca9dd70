"""The approximate graph's searches on a local Ray cluster (two worker processes, 127.0.0.1): the
same graph as the local build, and a loop on the ray engine picks what the local engine picks."""


import numpy as np
import pytest

from clicloop.orchestrator.training import graph as graph_mod
from clicloop.orchestrator.training.graph import neighbour_graph
from clicloop.strategies.ray_engine import RayEngine

pytestmark = pytest.mark.slow


def test_the_graph_searched_on_ray_is_the_local_graph(local_ray, monkeypatch):
    monkeypatch.setattr(graph_mod, "CHUNK", 700)  # several ranges for the two workers
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1.0, (1500, 16)) for c in (0, 3, 6)])
    engine = RayEngine(num_workers=2)
    on_ray = neighbour_graph(X, 10, "approximate", cache=False, engine=engine)
    local = neighbour_graph(X, 10, "approximate", cache=False)
    assert (on_ray != local).nnz == 0 and on_ray.nnz == len(X) * 10


def test_a_loop_on_the_ray_engine_picks_what_the_local_engine_picks(local_ray, monkeypatch, tmp_path):
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.ledger import Ledger
    from tests.conftest import digits_config

    from clicloop.orchestrator.training import graph_ray

    monkeypatch.setattr(graph_mod, "EXACT_MAX", 100)  # digits gets the approximate graph
    searched = []
    real = graph_ray.search_on_ray
    monkeypatch.setattr(graph_ray, "search_on_ray", lambda *a: searched.append(1) or real(*a))
    picks = []
    for name in ("local", "ray"):
        monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / name))  # each builds its own graph
        ledger = f"sqlite:///{tmp_path / name}.db"
        loop = {"engine": {"name": name, "num_workers": 2}}
        Loop(config_from_dict(digits_config(ledger, loop=loop, strategy={"name": "margin"}, stop={"max_labels": 30}))).run()
        picks.append(sorted(Ledger(ledger).open().labels("t").items()))
    assert searched == [1]  # the ray loop's graph was searched on Ray, once
    assert picks[0] == picks[1] and len(picks[0]) == 30
