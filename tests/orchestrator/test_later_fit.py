"""The model a round evaluates is fitted while people work on the round's tasks
(``orchestrator/later_fit.py``): the tasks go out first, the picks and metrics are those of a loop
that fits it first, a kill in between loses nothing, and on a simulated clock its seconds count."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from clicloop.orchestrator import loop as loop_module
from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.hookspecs import hookimpl
from clicloop.orchestrator.later_fit import fit_first
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.verify import verify
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.plugins import get_plugin_manager
from tests.conftest import digits_config
from tests.orchestrator.test_loop import dump


class Watch:
    """A plugin: each round's recorded metric at the moment its first tasks go out, and the
    simulated clock (``event-crowd``) when each round ends; ``kill_at``: a crash right after that
    round's tasks went out."""

    def __init__(self, kill_at: int | None = None):
        self.kill_at = kill_at
        self.at_dispatch: dict[int, Any] = {}
        self.clock: dict[int, float] = {}

    @hookimpl
    def clicloop_tasks_dispatched(self, loop: Any, round_no: int, tasks: Any) -> None:
        row = next(r for r in loop.ledger_.rounds(loop.name) if r["round_no"] == round_no)
        self.at_dispatch.setdefault(round_no, row["metric"])
        if round_no == self.kill_at:
            raise KeyboardInterrupt("killed after the tasks went out")

    @hookimpl
    def clicloop_round_finished(self, loop: Any, result: Any) -> None:
        now = getattr(loop.backend_, "now_", None)
        if now is not None:
            self.clock[result.round_no] = now


def run(cfg: dict[str, Any], watch: Watch | None = None) -> list[Any]:
    pm = get_plugin_manager(load_entrypoints=False)
    if watch is not None:
        pm.register(watch)
    return Loop(config_from_dict(cfg), plugin_manager=pm).run()


def test_tasks_go_out_before_the_model_the_round_evaluates_and_every_round_keeps_its_metric(tmp_path):
    watch = Watch()
    results = run(digits_config(f"sqlite:///{tmp_path / 'l.db'}"), watch)
    assert sorted(watch.at_dispatch) == [0, 1, 2, 3, 4]
    assert all(metric is None for metric in watch.at_dispatch.values())  # the pseudo-labeled fit was still to come
    assert all(r.metric is not None for r in results) and results[-1].metric > results[0].metric
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        assert all(row["metric"] is not None for row in ledger.rounds("t"))
        assert verify(ledger) == []


def test_the_same_ledger_as_a_loop_that_fits_it_first(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    later = run(digits_config(f"sqlite:///{tmp_path / 'later.db'}"))
    monkeypatch.setattr(loop_module, "fit_first", lambda loop, query: True)
    watch = Watch()
    first = run(digits_config(f"sqlite:///{tmp_path / 'first.db'}"), watch)
    assert all(metric is not None for metric in watch.at_dispatch.values())
    assert [(r.n_labeled, r.metric) for r in later] == [(r.n_labeled, r.metric) for r in first]
    assert dump(tmp_path / "later.db") == dump(tmp_path / "first.db")


@pytest.mark.parametrize("kill_at", [0, 2])
def test_a_kill_between_the_tasks_and_the_later_fit_resumes_with_nothing_lost(tmp_path, monkeypatch, kill_at):
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    whole = run(digits_config(f"sqlite:///{tmp_path / 'whole.db'}"))
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    with pytest.raises(KeyboardInterrupt):
        run(digits_config(url), Watch(kill_at=kill_at))
    with Ledger(url) as ledger:
        assert next(r for r in ledger.rounds("t") if r["round_no"] == kill_at)["metric"] is None
    resumed = run(digits_config(url))
    assert [(r.n_labeled, r.metric) for r in resumed] == [(r.n_labeled, r.metric) for r in whole]
    assert dump(tmp_path / "killed.db") == dump(tmp_path / "whole.db")
    with Ledger(url) as ledger:
        assert verify(ledger) == []


def test_a_stop_rule_on_the_metric_or_a_pre_annotating_backend_fits_it_first(tmp_path):
    watch = Watch()
    run(digits_config(f"sqlite:///{tmp_path / 'l.db'}", stop={"max_labels": 30, "target_metric": 0.999}), watch)
    assert watch.at_dispatch and all(metric is not None for metric in watch.at_dispatch.values())

    def loop(stop: dict[str, Any] | None = None, **backend: Any) -> Any:
        cfg = config_from_dict(digits_config("sqlite://", stop=stop or {"max_labels": 30}))
        return SimpleNamespace(config=cfg, backend_=SimpleNamespace(**backend))

    model = object()
    assert not fit_first(loop(), model)
    assert fit_first(loop(), None)  # a cold round: no model to send tasks with
    assert fit_first(loop(pre_annotations=True), model)
    assert not fit_first(loop(pre_annotations=False), model)
    assert fit_first(loop({"max_labels": 30, "plateau": {"rounds": 2, "min_points_per_hour": 1.0}}), model)


def test_on_a_simulated_clock_a_round_lasts_as_long_as_its_background_fit(tmp_path):
    """Each fit is charged 400 simulated seconds: the query fit before the tasks go out, the later
    fit beside the crowd's answers (a batch of 10 takes the crowd well under 400 s), so a round
    that sends tasks lasts at least 800 s; before the later fit was charged it lasted about 430."""
    watch = Watch()
    run(digits_config(f"sqlite:///{tmp_path / 'l.db'}", backend={"name": "event-crowd", "params": {"compute_s": 400.0}}),
        watch)
    ends = [watch.clock[r] for r in sorted(watch.clock)]
    spans = [b - a for a, b in zip(ends, ends[1:])][:-1]  # rounds 1.. that sent tasks (the last one only stops)
    assert spans and all(span >= 800.0 for span in spans)
