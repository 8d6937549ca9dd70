"""Continuous mode with slow refits: a version's ranking holds a reserve for the answers that come
while the next one is fitted (:meth:`ContinuousRun._reserve`), so the queue runs dry less."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.continuous import ContinuousRun
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import continuous as cl
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from tests.orchestrator.test_continuous import config


def run(url: str) -> tuple[int, float]:
    """Each refit charged 30 simulated seconds: 20 workers answer about 40 tasks meanwhile, more
    than a ranking of ``lookahead + refit_every`` (50) holds once the queue is full. The most
    tasks one version chose, and the waiting's share of active time."""
    Loop(config_from_dict(config(url, max_labels=200, compute_s=30.0))).run()
    with Ledger(url) as ledger:
        assert verify(ledger) == []
        assert ledger.spent("t")["answers"] == 200
        with ledger.engine_.connect() as conn:
            chosen = Counter(conn.execute(select(s.tasks.c.round_no)).scalars())
        return max(chosen.values()), cl.waiting(ledger, "t")["share_of_active"]


def test_a_slow_refit_runs_the_queue_dry_less_with_the_reserve(tmp_path, monkeypatch):
    most, waited = run(f"sqlite:///{tmp_path / 'with.db'}")
    monkeypatch.setattr(ContinuousRun, "_reserve", lambda self, r, seen: 0)
    plain_most, plain_waited = run(f"sqlite:///{tmp_path / 'without.db'}")
    assert plain_most <= 50 < most  # later versions ranked beyond lookahead + refit_every
    assert waited < 0.8 * plain_waited


def test_the_reserve_follows_the_slowest_refit_and_holds_at_least_one_refits_answers(monkeypatch):
    """Seen on a real Label Studio under load (tests/backends/test_labelstudio_continuous.py): a refit
    slower than the one before ran the queue dry near the end of the budget and two annotators
    found the stream empty for 2.3 s. The reserve counts the slowest earlier refit, and never less
    than ``refit_every`` answers."""
    from types import SimpleNamespace

    loop = SimpleNamespace(ledger_=None, name="t", config=SimpleNamespace(loop=SimpleNamespace(lookahead=12, refit_every=4)))
    run = ContinuousRun(loop)
    versions = {0: {"compute_s": 5.0}, 1: {"compute_s": 0.1}, 2: {"compute_s": 9.0}}
    monkeypatch.setattr(cl, "versions", lambda ledger, name: versions)
    monkeypatch.setattr(cl, "answer_rate", lambda ledger, name, seen: 1.0)
    assert run._reserve(2, 30) == 10  # versions 0 and 1 before it: 2 x 1/s x 5 s, not the last one's 0.1 s
    versions[0]["compute_s"] = 0.1
    assert run._reserve(2, 30) == 4  # quick refits: one refit's answers (refit_every)
    assert run._reserve(3, 30) == 18  # 2 x 1/s x 9 s, under the cap of twice the lookahead (24)
    monkeypatch.setattr(cl, "answer_rate", lambda ledger, name, seen: None)
    assert run._reserve(3, 30) == 0  # no answer rate yet
