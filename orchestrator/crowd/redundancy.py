"""Redundancy and answer checks: which items need another answer, and which answers are usable.

Adaptive redundancy asks for one more answer while an item's answers disagree, up to a maximum
(Sheng, Provost and Ipeirotis, "Get another label?", KDD 2008, on repeated labeling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from clicloop.orchestrator.config import Adaptive
from clicloop.orchestrator.crowd.plausibility import amount_problem
from clicloop.orchestrator.types import Answer


def agreement(labels: Sequence[str]) -> float:
    """Share of the votes held by the most frequent label (0 without votes)."""
    if not labels:
        return 0.0
    return max(labels.count(label) for label in set(labels)) / len(labels)


def doubtful_items(tasks: Sequence[dict[str, Any]], votes: Sequence[dict[str, Any]], adaptive: Adaptive) -> list[tuple[str, int]]:
    """``(item, next replica)`` for each item whose answers agree less than ``adaptive.agreement``
    and that has fewer than ``adaptive.max_answers`` tasks, in the order of ``tasks`` (the
    strategy's ranking)."""
    top: dict[str, int] = {}
    for row in tasks:
        top[row["item_id"]] = max(top.get(row["item_id"], -1), row["replica"])
    labels: dict[str, list[str]] = {}
    for v in votes:
        labels.setdefault(v["item_id"], []).append(v["label"])
    return [(item, replica + 1) for item, replica in top.items()
            if replica + 1 < adaptive.max_answers and agreement(labels.get(item, [])) < adaptive.agreement]


def check_answer(answer: Answer, labels: Sequence[str]) -> tuple[str, str | None]:
    """Status and reason of an answer: usable, skipped, or quarantined (never a crash): the
    backend's own ``problem``, times or pay that are not finite and non-negative, pay above
    ``plausibility.MAX_AMOUNT``, or a label outside the set."""
    if answer.problem:
        return "quarantined", answer.problem
    amounts = (answer.active_s, answer.search_s, answer.wait_s, answer.returned_s, answer.qualification_s, answer.reward, answer.fee)
    if not all(isinstance(v, (int, float, Decimal)) and math.isfinite(v) and v >= 0 for v in amounts):
        return "quarantined", f"invalid times or pay {amounts!r}"
    problem = amount_problem(answer.reward, "reward") or amount_problem(answer.fee, "fee")
    if problem:
        return "quarantined", problem
    if answer.label is None:
        return "skipped", None
    if answer.label not in labels:
        return "quarantined", f"label {answer.label!r} is not in the label set"
    return "submitted", None
