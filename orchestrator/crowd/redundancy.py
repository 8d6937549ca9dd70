"""Redundancy and answer checks: which items need another answer, and which answers are usable.

Adaptive redundancy asks for one more answer while an item's answers disagree, up to a maximum
(Sheng, Provost and Ipeirotis, "Get another label?", KDD 2008, on repeated labeling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from clicloop.orchestrator.config import Adaptive
from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S, amount_problem, time_problem
from clicloop.orchestrator.types import Answer, Task


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


def screened(task: Task, answer: Answer, labels: Sequence[str], *, currency: str | None = None,
             max_active_s: float = DEFAULT_MAX_ACTIVE_S) -> tuple[Task, Answer, str, str | None]:
    """``(task, answer, status, reason)`` as the ledger records it, whichever backend reported the
    answer: :func:`check_answer`'s status, and two rules a backend may not apply itself. A time
    (active, searching, waiting, returned work, qualification) above ``max_active_s`` (the
    plausibility limit) is quarantined, recorded as 0 s and unpaid, with the raw value in the
    reason (unpaid seconds count in wages and back-pay: 1e6 s of waiting read as 10,016 EUR owed);
    pay in another currency than the loop's (``currency``: the backend's, else the ledger's for
    this loop) is quarantined and not recorded as pay, the amounts in the reason (a loop's sums
    hold one currency; no exchange rate is assumed). Pay that is not valid money is not recorded
    either (a negative reward had its fee paid)."""
    zero = Decimal(0)
    status, reason = check_answer(answer, labels)
    if status == "quarantined":
        if reason is not None and ("invalid times or pay" in reason or reason.startswith(("reward", "fee"))):
            answer = replace(answer, reward=zero, fee=zero)
        return task, answer, status, reason
    times = {"active_s": answer.active_s, "search_s": answer.search_s, "wait_s": answer.wait_s,
             "returned_s": answer.returned_s, "qualification_s": answer.qualification_s}
    problem = next((p for f, v in times.items() if (p := time_problem(v, f, max_active_s)) is not None), None)
    if problem is not None:
        return (task, replace(answer, reward=zero, fee=zero, **dict.fromkeys(times, 0.0)), "quarantined",
                f"{problem}; recorded as 0 s, unpaid")
    if currency is not None and str(answer.currency).upper() != currency.upper():
        return (task, replace(answer, reward=zero, fee=zero), "quarantined",
                f"paid in {answer.currency!r} (reward {answer.reward}, fee {answer.fee}) where the loop pays in {currency}: "
                "not recorded as pay (a loop's sums hold one currency); settle it by hand")
    return task, answer, status, reason


def answer_rules(backend: Any, ledger: Any, loop: str, answers: Sequence[Answer] = ()) -> dict[str, Any]:
    """:func:`screened`'s rules for ``loop``'s answers: its currency (the backend's ``currency``,
    else the first the ledger recorded for the loop, else the most common among ``answers``: one
    stray answer of a first poll does not set it) and the backend's ``max_active_s`` (the default
    plausibility limit when it states none)."""
    currency = getattr(backend, "currency", None)
    if not isinstance(currency, str):
        currency = ledger.currency(loop) or _most_common(answers)
    limit = getattr(backend, "max_active_s", None)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit <= 0:
        limit = DEFAULT_MAX_ACTIVE_S
    return {"currency": currency, "max_active_s": float(limit)}


def _most_common(answers: Sequence[Answer]) -> str | None:
    """The currency most of ``answers`` are paid in (ties: the first in name order); None without any."""
    from collections import Counter

    counts = Counter(a.currency for a in answers if isinstance(a.currency, str))
    return min(counts, key=lambda cur: (-counts[cur], cur)) if counts else None
