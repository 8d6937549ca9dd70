"""The newest labels decide whether a round deploys its pseudo-labeled fit
(``orchestrator/training/newest.py``, ``loop.pseudo_labels.newest_check``)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from clicloop.orchestrator.hookspecs import hookimpl
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.training.newest import choose, keeps, tally
from tests.conftest import digits_config
from tests.orchestrator.test_later_fit import Watch, run
from tests.orchestrator.test_loop import dump


class Says:
    """A fitted model that predicts ``labels[row]`` for row ``row`` (``X`` holds row numbers)."""

    classes_ = np.array(["a", "b"])

    def __init__(self, labels: list[str]):
        self.labels = np.array(labels)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        said = self.labels[X[:, 0].astype(int)]
        return np.where((said == "a")[:, None], [0.8, 0.2], [0.2, 0.8])


X = np.arange(6, dtype=float)[:, None]
TRUTH = np.array(["a", "a", "b", "b", "a", "b"])


def base(human: Says, pseudo: Says | None, tallies: list[Any], kept: bool = True) -> dict[str, Any]:
    """The last round's generation: rows 0 and 1 labeled, and its two fits."""
    return {"rows": np.array([0, 1]), "classes": np.array(["a"]), "codes": np.array([0, 0]), "trained": pseudo,
            "check": {"query": human, "tallies": tallies, "kept": kept}}


def test_the_tally_scores_the_last_rounds_fits_on_the_labels_new_since():
    human, pseudo = Says(["a"] * 6), Says(list(TRUTH))
    idx = np.array([0, 1, 2, 3, 4])  # 2, 3, 4 are new
    assert tally(base(human, pseudo, []), X, idx, TRUTH[idx]) == [1, 3, 3]
    assert tally(base(human, None, []), X, idx, TRUTH[idx]) == [1, 1, 3]  # no pseudo-labeled fit: the same model
    relabeled = TRUTH[idx].copy()
    relabeled[1] = "b"  # a changed label counts as new
    assert tally(base(human, pseudo, []), X, idx, relabeled)[2] == 4
    assert tally(None, X, idx, TRUTH[idx]) is None and tally({"check": None}, X, idx, TRUTH[idx]) is None


def test_the_human_label_fit_takes_over_once_it_gets_nearly_all_the_newest_labels_right_and_no_fewer():
    assert keeps([[10, 10, 10]], 2)  # fewer tallies than rounds: kept
    assert keeps([None, [10, 10, 10]], 2)  # a round without one: kept
    assert not keeps([[10, 10, 10], [9, 9, 10]], 2)  # 19 of 20 right, as many as with pseudo-labels
    assert keeps([[10, 10, 10], [9, 10, 10]], 2)  # pseudo-labels got more right
    assert keeps([[6, 6, 10], [7, 7, 10]], 2)  # a tie, but the hardest items still puzzle it (13 of 20)
    assert not keeps([[6, 6, 10], [7, 7, 10]], 2, sure=0.6)
    assert not keeps([[1, 3, 3], [10, 10, 10], [10, 10, 10]], 2)  # only the last 2 rounds count
    assert keeps([[0, 0, 0], [0, 0, 0]], 2)  # no new label at all: nothing measured


def labeler(rounds: int, last: dict[str, Any] | None) -> Any:
    kept: list[dict[str, Any]] = []
    return SimpleNamespace(newest_check=rounds, agree=True, base_=last, remember_check=kept.append, kept=kept)


def test_a_round_deploys_the_human_label_fit_once_pseudo_labels_stop_helping_and_says_so(caplog):
    human, pseudo = Says(["a"] * 6), Says(list(TRUTH))
    idx = np.array([0, 1, 2, 3, 4])
    query, trained = object(), object()
    helping = labeler(2, base(human, pseudo, [[0, 2, 2]]))
    assert choose(helping, query, trained, X, idx, TRUTH[idx]) is trained
    assert helping.kept[0]["tallies"] == [[0, 2, 2], [1, 3, 3]] and helping.kept[0]["kept"] is True
    knows = Says(list(TRUTH))
    same = labeler(2, base(knows, knows, [[2, 2, 2]]))
    with caplog.at_level(logging.INFO, logger="clicloop.orchestrator.training.newest"):
        assert choose(same, query, trained, X, idx, TRUTH[idx]) is query
    assert "left out of the model the round evaluates" in caplog.text and "got 5 right, the pseudo-labeled fits 5" in caplog.text
    off = labeler(0, base(knows, knows, [[2, 2, 2]]))
    assert choose(off, query, trained, X, idx, TRUTH[idx]) is trained and off.kept == []


def checked(ledger: str, **loop: Any) -> dict[str, Any]:
    return digits_config(ledger, loop={"pseudo_labels": {"newest_check": 1, **loop}}, stop={"max_labels": 400})


def test_the_check_changes_which_model_a_round_evaluates_never_a_pick(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    with caplog.at_level(logging.INFO, logger="clicloop.orchestrator.training.newest"):
        on = run(checked(f"sqlite:///{tmp_path / 'on.db'}"))
    off = run(digits_config(f"sqlite:///{tmp_path / 'off.db'}", loop={"pseudo_labels": {"newest_check": 0}},
                            stop={"max_labels": 400}))
    assert "left out of the model the round evaluates" in caplog.text
    assert [r.n_labeled for r in on] == [r.n_labeled for r in off]
    with Ledger(f"sqlite:///{tmp_path / 'on.db'}") as a, Ledger(f"sqlite:///{tmp_path / 'off.db'}") as b:
        assert a.labels("t") == b.labels("t")  # the same items, the same answers
    assert [r.metric for r in on] != [r.metric for r in off]


class Switches(Watch):
    """A :class:`Watch` that also notes each round whose check switched the model it evaluates
    (the ``newest`` log line, written before the round finishes)."""

    def __init__(self, caplog: Any):
        super().__init__()
        self.caplog, self.seen, self.rounds = caplog, 0, []

    @hookimpl
    def clicloop_round_finished(self, loop: Any, result: Any) -> None:
        super().clicloop_round_finished(loop, result)
        said = [r for r in self.caplog.records if "the model the round evaluates" in r.getMessage()]
        if len(said) > self.seen:
            self.rounds.append(result.round_no)
        self.seen = len(said)


@pytest.mark.parametrize("switch", [0, 1])  # killed in the round after the first switch, after the second
def test_a_kill_after_the_check_switched_resumes_to_the_same_ledger(tmp_path, monkeypatch, caplog, switch):
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(tmp_path / "cache"))
    watch = Switches(caplog)
    with caplog.at_level(logging.INFO, logger="clicloop.orchestrator.training.newest"):
        whole = run(checked(f"sqlite:///{tmp_path / 'whole.db'}"), watch)
    assert len(watch.rounds) >= 2, f"the check switched only after rounds {watch.rounds}: nothing to kill after"
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    with pytest.raises(KeyboardInterrupt):  # the round resumed from reads the switched check
        run(checked(url), Watch(kill_at=watch.rounds[switch] + 1))
    resumed = run(checked(url))
    assert [(r.n_labeled, r.metric) for r in resumed] == [(r.n_labeled, r.metric) for r in whole]
    assert dump(tmp_path / "killed.db") == dump(tmp_path / "whole.db")
    with Ledger(url) as ledger:
        assert verify(ledger) == []
