"""Built-in aggregation: majority vote, ties broken by the seed."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from clicloop.orchestrator.hookspecs import Register, hookimpl
from clicloop.orchestrator.types import Consensus, Vote


class MajorityVote:
    """The most frequent label per item; confidence is its share of the votes."""

    def aggregate(self, votes: Sequence[Vote], rng: np.random.Generator) -> list[Consensus]:
        by_item: dict[str, list[str]] = defaultdict(list)
        for vote in votes:
            by_item[vote.item_id].append(vote.label)
        result = []
        for item_id in sorted(by_item):
            counts = Counter(by_item[item_id])
            top = max(counts.values())
            winners = sorted(label for label, n in counts.items() if n == top)
            label = winners[int(rng.integers(len(winners)))] if len(winners) > 1 else winners[0]
            n = len(by_item[item_id])
            result.append(Consensus(item_id, label, top / n, n))
        return result

    def __repr__(self) -> str:
        return "MajorityVote()"


@hookimpl
def clicloop_register_aggregators(register: Register) -> None:
    register("majority", MajorityVote)
