"""Whether a round's pseudo-labels still earn their place: the newest labels as a held-out set.

With ``agree`` (the default) a round fits two models on its labels: the fit on human labels alone
(the one the strategy queries with) and the pseudo-labeled fit (the one it evaluates and
deploys). Neither saw the labels people give in the rounds after it, so those labels score both:
each round tallies how many of the labels bought since the last round each of the last round's
two fits got right. With ``newest_check: N`` (default 8), a round deploys its fit on human labels
instead of the pseudo-labeled one when, over the last N rounds' tallies, the fits on human labels
got at least ``SURE`` (90%) of those labels right and no fewer than the pseudo-labeled fits: the
items the strategy found hardest no longer puzzle the human-label fit, and the pseudo-labels do
not do better on them. It also queries with that fit, so no pick changes: only the model the
round evaluates, pre-annotates with and deploys. Until N tallies exist (the first rounds, or a
cache folder deleted) pseudo-labels are kept.

Why: once the human labels are many, a model trained on them and on the pool's pseudo-labels
drifts towards the model trained on every item, while the chosen labels alone can do better (on
digits at batch 10 the pseudo-labeled fit sat at the full-data accuracy from about 280 labels on,
below margin's). N and SURE were chosen on calibration loops (seeds 10-19) and measured on
others (seeds 0-9): docs/benchmarks/log.md, 2026-12-05, "Pseudo-labels at the top of the curve".
Testing each model on the labels that come after it is prequential ("test, then train")
evaluation: A. P. Dawid, "Statistical theory: the prequential approach", JRSS A 147, 1984.

The tallies and both fits are kept with the round's pseudo-label generation (:mod:`.warmstate`),
so a resumed loop decides as the uninterrupted one did.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from clicloop.orchestrator.training.models import predicted_labels

log = logging.getLogger(__name__)

SURE = 0.9  # share of the newest labels the human-label fit must get right before it replaces the pseudo-labeled one


def tally(base: dict[str, Any] | None, X: Any, idx: np.ndarray, y: np.ndarray) -> list[int] | None:
    """``[human-label fit right, pseudo-labeled fit right, labels]`` of the ``base`` generation's
    two fits (its check's human-label fit, its ``trained``: None when no pseudo-label agreed, the
    same fit) on the labels (``idx``, ``y``) that are new since it (an item not labeled then, or
    labeled otherwise); None when ``base`` kept no check (the first round, a lost cache)."""
    check = None if base is None else base.get("check")
    if check is None:
        return None
    before = set(zip(np.asarray(base["rows"]).tolist(), np.asarray(base["classes"])[base["codes"]].astype(str).tolist()))
    labels = np.asarray(y).astype(str)
    new = np.array([(r, lab) not in before for r, lab in zip(np.asarray(idx).tolist(), labels.tolist())], dtype=bool)
    if not new.any():
        return [0, 0, 0]
    rows, truth = np.asarray(idx)[new], labels[new]
    human = int((predicted_labels(check["query"], X[rows]) == truth).sum())
    pseudo = human if base.get("trained") is None else int((predicted_labels(base["trained"], X[rows]) == truth).sum())
    return [human, pseudo, int(new.sum())]


def keeps(tallies: list[list[int] | None], rounds: int, sure: float = SURE) -> bool:
    """Whether the pseudo-labeled fit is deployed: yes with fewer than ``rounds`` tallies (or a
    missing one, or no label in them); no when the human-label fits got at least ``sure`` of the
    labels right and no fewer than the pseudo-labeled fits."""
    window = tallies[-rounds:]
    if len(window) < rounds or any(t is None for t in window):
        return True
    human, pseudo, n = (sum(t[i] for t in window) for i in range(3))  # type: ignore[index]
    return n == 0 or human < pseudo or human < sure * n


def choose(labeler: Any, query: Any, trained: Any, X: Any, idx: np.ndarray, y: np.ndarray) -> Any:
    """The model the round deploys, ``trained`` or ``query`` (:func:`keeps`), with this round's
    human-label fit and tallies recorded in ``labeler``'s current generation for the next round's
    check (the fit as a copy: a model instance the loop was given is fitted again next round; the
    pseudo-labeled fit is the generation's ``trained`` already)."""
    rounds = getattr(labeler, "newest_check", 0)
    if not rounds or not labeler.agree:
        return trained
    base = getattr(labeler, "base_", None)
    earlier = [] if base is None or base.get("check") is None else list(base["check"]["tallies"])
    tallies = (earlier + [tally(base, X, idx, y)])[-rounds:]
    keep = keeps(tallies, rounds)
    was = True if base is None or base.get("check") is None else base["check"]["kept"]
    if keep != was:
        human, pseudo, n = (sum(t[i] for t in tallies if t) for i in range(3))
        log.info("pseudo-labels: %s: on the %d labels bought in the last %d rounds, the fits on human labels alone got "
                 "%d right, the pseudo-labeled fits %d (loop.pseudo_labels.newest_check: the human-label fit is "
                 "deployed from 90%% right and no fewer than with pseudo-labels)",
                 "back in the model the round evaluates" if keep else "left out of the model the round evaluates",
                 n, rounds, human, pseudo)
    labeler.remember_check({"query": copy.deepcopy(query), "tallies": tallies, "kept": keep})
    return trained if keep else query
