"""Continuous mode with a strategy that covers around pending items (``margin-coverage`` with
``pending: true``): the tasks someone has started are not ranked again, they are handed to the
strategy as pending; by default (or with a strategy without it) open tasks compete as before."""

from __future__ import annotations

import numpy as np
import pytest

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from tests.orchestrator.test_continuous import config


def spy(monkeypatch) -> list[tuple[np.ndarray, np.ndarray]]:
    """Record each ranking's candidates and pending items (pool indices)."""
    calls: list[tuple[np.ndarray, np.ndarray]] = []
    select = Loop._select

    def recording(self, r, model, candidates, n, pending=None):
        calls.append((np.asarray(candidates), np.empty(0, dtype=np.int64) if pending is None else np.asarray(pending)))
        return select(self, r, model, candidates, n, pending)

    monkeypatch.setattr(Loop, "_select", recording)
    return calls


def test_the_tasks_people_started_are_pending_not_ranked_again(ledger_url, monkeypatch):
    calls = spy(monkeypatch)
    raw = config(ledger_url)
    raw["strategy"] = {"name": "margin-coverage", "params": {"pending": True}}
    Loop(config_from_dict(raw)).run()
    assert calls[0][1].size == 0  # the seed model: nothing asked yet
    later = [pending for _, pending in calls[1:-1]]
    assert later and later[0].size >= 10  # 20 workers: most hold a task at the first refit
    for candidates, pending in calls:
        assert not np.isin(pending, candidates).any()
    with Ledger(ledger_url) as ledger:
        assert verify(ledger) == []
        assert ledger.spent("t")["answers"] == 80


@pytest.mark.parametrize("strategy", [{"name": "margin-coverage"}, {"name": "margin"}])
def test_without_a_strategy_that_takes_them_open_tasks_compete(ledger_url, monkeypatch, strategy):
    calls = spy(monkeypatch)
    raw = config(ledger_url)
    raw["strategy"] = strategy
    Loop(config_from_dict(raw)).run()
    assert len(calls) > 2 and all(pending.size == 0 for _, pending in calls)
