"""Label quality: gold questions (with disputes), per-worker accuracy, relabel-or-new, and the
aggregation of the items a round touched.

- Gold questions: items with a known answer mixed into the work, the classic way to estimate a
  worker's accuracy (Oleson et al., "Programmatic Gold", HCOMP 2011). A gold item its workers
  dispute (at least ``gold.dispute_share`` of its answers) is a broken question, not a careless
  crowd: every answer on it is accepted and paid, and the item is retired.
- Relabel or label new: one more answer on an item whose consensus is doubtful can be worth more
  than a new item (Sheng, Provost and Ipeirotis, "Get another label?", KDD 2008); doubtful items
  compete with new ones under the same strategy score.

Everything is derived from the ledger, so a resumed loop makes the same decisions.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clicloop.orchestrator.config import Gold, Relabel
from clicloop.orchestrator.errors import AggregatorError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.types import Answer, Consensus, Vote

log = logging.getLogger("clicloop")
DISPUTED = ("gold item disputed by its workers (at least gold.dispute_share of its answers): treated as unclear "
            "instructions, answer accepted and paid")
DISPUTED_LATER = ("gold item disputed by its workers since this answer was rejected: treated as unclear instructions, "
                  "the rejection overturned and the pay withheld paid back")


@dataclass(frozen=True)
class GoldItem:
    """What the answers so far say about one gold item."""

    item_id: str
    key: str  # the known answer
    answers: int
    wrong: int
    disputed: bool


def gold_status(rows: Sequence[Mapping[str, Any]], known: Mapping[str, str], gold: Gold) -> dict[str, GoldItem]:
    """Per gold item: its answers, the wrong ones, and whether its workers dispute its key (at
    least ``gold.dispute_share`` of the answers, judged once it has ``gold.min_answers``)."""
    by_item: dict[str, list[str]] = {}
    for row in rows:
        if row["label"] is not None:
            by_item.setdefault(row["item_id"], []).append(row["label"])
    out = {}
    for item, labels in by_item.items():
        wrong = sum(label != known[item] for label in labels)
        disputed = len(labels) >= gold.min_answers and wrong >= gold.dispute_share * len(labels)
        out[item] = GoldItem(item, known[item], len(labels), wrong, disputed)
    return out


def plan_gold(known: Mapping[str, str], retired: set[str], per_round: int, rng: np.random.Generator) -> list[str]:
    """The gold items to mix into a round: drawn from the known answers, minus retired ones."""
    usable = sorted(set(known) - retired)
    if not usable:
        return []
    return [usable[i] for i in sorted(rng.choice(len(usable), size=min(per_round, len(usable)), replace=False))]


def judge_gold(ledger: Ledger, loop: str, known: Mapping[str, str], gold: Gold) -> dict[str, GoldItem]:
    """Review the answers on gold items that are ready: disputed items -> accept all (paid; an
    answer rejected before the item was disputed is accepted after all, its pay given back);
    otherwise accept right answers and, with ``gold.reject_failed``, reject wrong ones with the
    reason and their pay withheld. Reviews happen once per answer (idempotent)."""
    from clicloop.orchestrator.ledger.reviews import overturn

    rows = ledger.gold_answers(loop)
    status = gold_status(rows, known, gold)
    for row in rows:
        item = status.get(row["item_id"])
        if item is not None and item.disputed and row["decision"] == "reject":  # rejected before the key was disputed
            overturn(ledger.engine_, row["task_key"], DISPUTED_LATER, "gold")
            continue
        if item is None or row["decision"] is not None or item.answers < gold.min_answers:
            continue
        if item.disputed:
            ledger.review(row["task_key"], accept=True, reason=DISPUTED, reviewer="gold")
        elif row["label"] == item.key:
            ledger.review(row["task_key"], accept=True, reviewer="gold")
        elif gold.reject_failed:
            ledger.review(row["task_key"], accept=False, reviewer="gold", withhold_pay=True,
                          reason=f"gold question: answered {row['label']!r} where the known answer is {item.key!r}")
    return status


def worker_accuracy(ledger: Ledger, loop: str, known: Mapping[str, str], gold: Gold) -> dict[str, tuple[int, int]]:
    """Per worker pseudonym: (right, answered) on gold items that are not disputed."""
    rows = ledger.gold_answers(loop)
    disputed = {i for i, g in gold_status(rows, known, gold).items() if g.disputed}
    out: dict[str, tuple[int, int]] = {}
    for row in rows:
        if row["label"] is None or row["item_id"] in disputed:
            continue
        right, answered = out.get(row["worker"], (0, 0))
        out[row["worker"]] = (right + (row["label"] == known[row["item_id"]]), answered + 1)
    return out


def relabel_candidates(ledger: Ledger, loop: str, relabel: Relabel, keep_out: set[str]) -> dict[str, int]:
    """Labeled items whose consensus confidence is below ``relabel.below`` and that have fewer
    than ``relabel.max_answers`` answers: item -> answers so far."""
    confidence = ledger.label_confidence(loop)
    doubtful = sorted(i for i, c in confidence.items() if c < relabel.below and i not in keep_out)
    if not doubtful:
        return {}
    counts: dict[str, int] = {}
    for vote in ledger.votes(loop, item_ids=doubtful):
        counts[vote["item_id"]] = counts.get(vote["item_id"], 0) + 1
    return {i: counts.get(i, 0) for i in doubtful if counts.get(i, 0) < relabel.max_answers}


def aggregate_items(ledger: Ledger, aggregator: Any, loop: str, r: int, items: Sequence[str], rng: np.random.Generator,
                    labels: Sequence[str], gold: Sequence[str] = ()) -> None:
    """Aggregate every usable answer on ``items`` (all rounds: a relabeled item keeps its earlier
    votes); new items get their first label, relabeled ones a revision when it changed. A
    ``pooled`` aggregator (Dawid-Skene and kin: worker parameters learned across items) gets every
    vote of the loop but the gold items', so what it learns about a worker from earlier rounds
    counts, and earlier items are revised when its estimate changes them."""
    if not items:
        return
    keep_out = set(gold)
    if getattr(aggregator, "pooled", False):
        votes = [Vote(v["item_id"], v["worker"], v["label"]) for v in ledger.votes(loop) if v["item_id"] not in keep_out]
    else:
        votes = [Vote(v["item_id"], v["worker"], v["label"]) for v in ledger.votes(loop, item_ids=items)]
    consensus = checked_consensus(aggregator.aggregate(votes, rng), votes, labels, aggregator)
    ledger.record_labels(loop, r, consensus)
    ledger.revise_labels(loop, r, consensus)


def checked_consensus(consensus: Any, votes: Sequence[Vote], labels: Sequence[str], aggregator: Any) -> list[Consensus]:
    """The aggregator's labels, one for each item with votes in this aggregation (an item left
    out would be bought again every round), in the label set, once, with a confidence in [0, 1]
    and a count of answers no larger than the item's votes; an :class:`AggregatorError` naming the
    first that is not, before anything is recorded (a label for an unknown item, or outside the
    set, would be kept by the ledger and break every later round)."""
    import dataclasses
    import math
    import numbers

    name = type(aggregator).__name__
    if not isinstance(consensus, (list, tuple)):
        raise AggregatorError(f"aggregator {name} returned {type(consensus).__name__}, not a list of Consensus; nothing "
                              "was recorded: fix the aggregator's code and run again (the round resumes)")
    counts = Counter(v.item_id for v in votes if v.label is not None)
    allowed, seen, out = set(labels), set(), []
    for c in consensus:
        count = isinstance(c, Consensus) and isinstance(c.n_answers, numbers.Integral) and not isinstance(c.n_answers, bool)
        problem = ("not a Consensus" if not isinstance(c, Consensus)
                   else f"item {c.item_id!r} has no answer in this aggregation" if c.item_id not in counts
                   else f"item {c.item_id!r} has a second label" if c.item_id in seen
                   else f"label {c.label!r} is not in the label set" if c.label not in allowed
                   else f"confidence {c.confidence!r} is not a number in [0, 1]"
                   if isinstance(c.confidence, bool) or not isinstance(c.confidence, (int, float))
                   or not math.isfinite(c.confidence) or not 0 <= c.confidence <= 1
                   else f"n_answers {c.n_answers!r} is not a count of the item's {counts[c.item_id]} answer(s)"
                   if not count or not 0 <= c.n_answers <= counts[c.item_id] else None)
        if problem:
            raise AggregatorError(f"aggregator {name} returned {c!r}: {problem}; nothing was recorded: fix the aggregator's "
                                  "code and run again (the round resumes; a change of its name or params is another config)")
        seen.add(c.item_id)
        out.append(dataclasses.replace(c, label=str(c.label), confidence=float(c.confidence), n_answers=int(c.n_answers)))
    missing = sorted(set(counts) - seen)
    if missing:
        raise AggregatorError(f"aggregator {name} returned no label for {len(missing)} item(s) with answers (e.g. "
                              f"{missing[0]!r}); nothing was recorded: an aggregator labels every item it is given (an "
                              "item left out would be bought again every round); fix its code and run again")
    return out


def apply_corrections(ledger: Ledger, aggregator: Any, loop: str, r: int, answers: Sequence[Answer], labels: Sequence[str],
                      rng: np.random.Generator) -> None:
    """Record updated or deleted answers as corrections and re-aggregate the items they touch
    (an item whose every answer was deleted loses its label)."""
    if not answers:
        return
    items = ledger.task_items(a.task_key for a in answers)
    rows = []
    for a in answers:
        usable = a.event == "deleted" or (a.event == "updated" and a.label in labels)
        if a.task_key not in items or not usable:
            log.warning("round %d: ignored correction %s of task %s (unknown task, event or label %r)", r, a.event, a.task_key, a.label)
            continue
        rows.append((a.task_key, items[a.task_key], a.event, a.label, a.version))
    ledger.record_corrections(loop, rows)
    touched = sorted({row[1] for row in rows})
    votes = [Vote(v["item_id"], v["worker"], v["label"]) for v in ledger.votes(loop, item_ids=touched)]
    consensus = checked_consensus(aggregator.aggregate(votes, rng), votes, labels, aggregator)
    withdrawn = sorted(set(touched) - {c.item_id for c in consensus})
    ledger.revise_labels(loop, r, consensus, withdrawn)


def vote_proba(ledger: Ledger, loop: str, items: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Each item's usable votes as a distribution over ``classes`` (the model's column order)."""
    column = {str(c): j for j, c in enumerate(classes)}
    row = {item: i for i, item in enumerate(items)}
    counts = np.zeros((len(items), len(classes)))
    for v in ledger.votes(loop, item_ids=list(items)):
        if v["label"] in column:
            counts[row[v["item_id"]], column[v["label"]]] += 1
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def compete(measure: Any, model: Any, X: Any, chosen_new: np.ndarray, doubtful: np.ndarray, doubtful_proba: np.ndarray,
            k: int) -> np.ndarray:
    """Relabel or label new: the strategy's own uncertainty measure scores new items on the
    model's probabilities and doubtful items on their votes' distribution (their label's
    uncertainty); the top ``k`` of both win (ties to the lower pool index)."""
    new_scores = measure(np.asarray(model.predict_proba(X[chosen_new]))) if len(chosen_new) else np.zeros(0)
    idx = np.concatenate([np.asarray(chosen_new, dtype=np.int64), np.asarray(doubtful, dtype=np.int64)])
    scores = np.concatenate([new_scores, measure(doubtful_proba)])
    return idx[np.lexsort((idx, -scores))[:k]]
