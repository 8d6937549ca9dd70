"""The aggregator contract over EVERY registered aggregator, and what Dawid-Skene buys over a vote."""

from __future__ import annotations

import numpy as np
import pytest

from clicloop.orchestrator.crowd.aggregate import MajorityVote
from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from clicloop.orchestrator.types import Consensus, Vote

REGISTRY = Registry(get_plugin_manager())
NAMES = REGISTRY.names("aggregator")
LABELS = ("a", "b", "c", "d")
# crowd-kit's MACE defaults (10 restarts x 50 iterations) take seconds even on 18 votes
FAST = {"mace": {"n_restarts": 2, "n_iter": 20}}


def _careless_crowd(seed: int, n_items: int = 120) -> tuple[list[Vote], dict[str, str]]:
    """8 workers, 3 of them careless (uniformly random); each item answered by 3 of them."""
    rng = np.random.default_rng(seed)
    truth = {f"i{i:03d}": str(rng.choice(LABELS)) for i in range(n_items)}
    votes = []
    for item, true in truth.items():
        for w in rng.choice(8, 3, replace=False):
            if w < 3:
                label = str(rng.choice(LABELS))
            elif rng.random() < 0.9:
                label = true
            else:
                label = str(rng.choice([x for x in LABELS if x != true]))
            votes.append(Vote(item, f"{'careless' if w < 3 else 'careful'}-{w}", label))
    return votes, truth


def test_the_crowdkit_aggregators_are_registered() -> None:
    assert {"majority", "dawid-skene", "one-coin-dawid-skene", "glad", "mace"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_agreement_gives_that_label_with_high_confidence(name: str) -> None:
    aggregator = REGISTRY.create("aggregator", name, FAST.get(name, {}))
    votes = [Vote(f"item-{i}", f"w{j}", LABELS[i % 4]) for i in range(6) for j in range(3)]
    result = aggregator.aggregate(votes, np.random.default_rng(0))
    assert [c.item_id for c in result] == [f"item-{i}" for i in range(6)]
    for c in result:
        assert isinstance(c, Consensus) and c.label == LABELS[int(c.item_id[-1]) % 4]
        assert 0.5 < c.confidence <= 1.0 and c.n_answers == 3
    assert aggregator.aggregate([], np.random.default_rng(0)) == []


@pytest.mark.parametrize("name", NAMES)
def test_same_votes_same_seed_same_result_whatever_the_order(name: str) -> None:
    votes, _ = _careless_crowd(seed=1, n_items=30)
    shuffled = [votes[i] for i in np.random.default_rng(5).permutation(len(votes))]
    first = REGISTRY.create("aggregator", name, FAST.get(name, {})).aggregate(votes, np.random.default_rng(7))
    again = REGISTRY.create("aggregator", name, FAST.get(name, {})).aggregate(shuffled, np.random.default_rng(7))
    assert first == again
    assert all(0.0 <= c.confidence <= 1.0 and c.label in LABELS for c in first)
    assert sum(c.n_answers for c in first) == len(votes)


@pytest.mark.parametrize("name", ["dawid-skene", "one-coin-dawid-skene"])
def test_careless_workers_are_outvoted_where_the_majority_follows_them(name: str) -> None:
    votes, truth = _careless_crowd(seed=0)
    rng = np.random.default_rng(0)
    majority = {c.item_id: c.label for c in MajorityVote().aggregate(votes, rng)}
    model = {c.item_id: c for c in REGISTRY.create("aggregator", name, FAST.get(name, {})).aggregate(votes, np.random.default_rng(0))}
    wrong_majority = [i for i in truth if majority[i] != truth[i]]
    assert len(wrong_majority) >= 10  # the seeded case really does fool the vote
    fixed = sum(model[i].label == truth[i] for i in wrong_majority)
    assert fixed >= len(wrong_majority) / 2
    accuracy = np.mean([model[i].label == truth[i] for i in truth])
    assert accuracy >= np.mean([majority[i] == truth[i] for i in truth]) + 0.05
    # a careless worker alone against two careful ones loses, with confidence
    careless_outvoted = [i for i in truth if sum(v.worker.startswith("careless") for v in votes if v.item_id == i) == 2]
    assert np.mean([model[i].label == truth[i] for i in careless_outvoted]) > 0.7
