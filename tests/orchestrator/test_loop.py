import sqlite3
from pathlib import Path

import numpy as np
import pytest

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.errors import BudgetError, ConfigError, UnknownPluginError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.types import Answer
from tests.conftest import digits_config

TABLES = ("loops", "rounds", "tasks", "assignments", "workers", "payments", "reviews", "corrections", "labels")


def dump(path, tables: tuple[str, ...] = TABLES) -> dict:
    """Every row of ``tables`` except wall-clock columns."""
    out = {}
    with sqlite3.connect(path) as conn:
        for table in tables:
            cols = [c[1] for c in conn.execute(f"pragma table_info({table})") if c[1] not in ("recorded_at", "created_at")]
            out[table] = conn.execute(f"select {', '.join(cols)} from {table} order by 1, 2").fetchall()
    return out


def test_loop_runs_to_its_label_budget_and_learns(ledger_url):
    results = Loop(config_from_dict(digits_config(ledger_url))).run()
    assert [r.round_no for r in results] == [0, 1, 2, 3, 4, 5]
    assert sum(r.answers for r in results) == 50
    assert results[-1].stop_reason.startswith("label budget spent")
    assert results[-1].n_labeled == 70 and results[-1].metric > results[0].metric
    with Ledger(ledger_url) as ledger:
        assert ledger.spent("t")["answers"] == 50 and len(ledger.labels("t")) == 50


def test_same_seed_same_ledger_and_report(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    dumps = []
    for name in ("a.db", "b.db"):
        Loop(config_from_dict(digits_config(f"sqlite:///{tmp_path / name}", loop={"redundancy": 3}, stop={"max_labels": 60}))).run()
        dumps.append(dump(tmp_path / name))
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["assignments"]) == 60
    Loop(config_from_dict(digits_config(f"sqlite:///{tmp_path / 'c.db'}", loop={"seed": 1}, stop={"max_labels": 60}))).run()
    assert dump(tmp_path / "c.db")["tasks"] != dumps[0]["tasks"]


def test_a_finished_loop_reruns_as_a_no_op_and_extends_when_the_budget_grows(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Loop(config_from_dict(digits_config(url))).run()
    before = dump(tmp_path / "l.db")
    Loop(config_from_dict(digits_config(url))).run()
    assert dump(tmp_path / "l.db")["assignments"] == before["assignments"]
    results = Loop(config_from_dict(digits_config(url, stop={"max_labels": 80}))).run()
    assert sum(r.answers for r in results) == 80


class OddCrowd:
    """A backend that answers one task with a label outside the set, skips one, breaks one."""

    confidential = False
    reads_ground_truth = False

    def open(self, context):
        self.labels = context.labels

    def dispatch(self, tasks):
        pass

    def collect(self, tasks):
        answers = []
        for i, t in enumerate(tasks):
            label = {0: "not-a-digit", 1: None}.get(i, t.labels[i % len(t.labels)])
            active = float("nan") if i == 2 else 3.0
            answers.append(Answer(t.key, f"w{i}", label, active_s=active, reward=0.01, fee=0.0, currency="EUR"))
        return answers

    def expected_cost_per_task(self):
        return 0.01

    def close(self):
        pass


def test_bad_answers_are_quarantined_not_fatal(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    results = Loop(config_from_dict(digits_config(url, stop={"max_labels": 20})), backend=OddCrowd()).run()
    assert results[-1].stop_reason.startswith("label budget")
    with sqlite3.connect(tmp_path / "q.db") as conn:
        statuses = dict(conn.execute("select status, count(*) from assignments group by status").fetchall())
        reasons = [r for (r,) in conn.execute("select reason from assignments where status='quarantined'")]
    assert statuses == {"quarantined": 4, "skipped": 2, "submitted": 14}
    assert any("not in the label set" in r for r in reasons) and any("invalid times" in r for r in reasons)


def test_unknown_strategy_lists_the_known_ones(tmp_path):
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'x.db'}", strategy={"name": "marginn"}))
    with pytest.raises(UnknownPluginError, match=r"strategy 'marginn'.*margin.*random"):
        Loop(cfg).run()


def test_a_money_budget_below_one_batch_is_refused_before_anything_is_written(tmp_path):
    cfg = config_from_dict(digits_config(f"sqlite:///{tmp_path / 'm.db'}", stop={"max_cost": 0.05}))
    with pytest.raises(BudgetError, match="stop.max_cost"):
        Loop(cfg).run()
    assert not (tmp_path / "m.db").exists()


def test_a_wage_floor_in_another_currency_than_the_pay_is_refused_before_anything_is_written(tmp_path):
    """A floor in USD over a backend paying EUR was taken as EUR by the reward pricing (rounds cost
    1.44, 3.50, 6.01 EUR) and compared with nothing by the report ('owed 0.00')."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = config_from_dict(digits_config(url, wage_floor={"amount": 12.02, "currency": "USD", "price_rewards": True}))
    with pytest.raises(ConfigError, match=r"wage_floor.*USD.*pays in EUR.*per_backend.simulated") as e:
        Loop(cfg).run()
    assert e.value.field == "wage_floor" and not (tmp_path / "m.db").exists()
    per_backend = {"amount": 12.02, "currency": "USD", "per_backend": {"simulated": {"amount": 11.5, "currency": "EUR"}}}
    assert Loop(config_from_dict(digits_config(url, wage_floor=per_backend, stop={"max_labels": 10}))).run()[-1].n_labeled > 0


@pytest.mark.slow
def test_margin_needs_about_half_the_labels_random_needs_on_digits(tmp_path):
    """The issue's reference: margin ~100 labels to 95% of full-data accuracy, random ~200."""
    from clicloop.orchestrator.cli.quickstart import full_data_metric, outcome

    ratios = []
    for seed in range(3):
        needed = {}
        for strategy in ("margin", "random"):
            cfg = config_from_dict(digits_config(
                f"sqlite:///{tmp_path / f'{strategy}{seed}.db'}", loop={"seed": seed, "pseudo_labels": None},
                strategy={"name": strategy}, stop={"max_labels": 500},
                backend={"name": "simulated", "params": {"accuracy_mean": 0.999, "careless_fraction": 0.0}},
            ))
            target = 0.95 * full_data_metric(cfg)
            needed[strategy] = outcome(strategy, Loop(cfg).run(), target).answers_to_target
        ratios.append(needed["margin"] / needed["random"])
    assert np.mean(ratios) < 0.7, ratios


@pytest.mark.slow
def test_the_default_loop_needs_fewer_labels_than_plain_margin_on_digits(tmp_path):
    """clicloop's default loop (margin-coverage, pseudo-labels where spreading and model agree)
    against plain margin sampling, same model, seed labels and crowd: the issue's comparison."""
    from clicloop.orchestrator.cli.quickstart import full_data_metric, outcome

    ratios = []
    for seed in range(3):
        needed = {}
        for name, loop, other in (("default", {}, {}), ("margin", {"pseudo_labels": None}, {"strategy": {"name": "margin"}})):
            cfg = config_from_dict(digits_config(
                f"sqlite:///{tmp_path / f'{name}{seed}.db'}", loop={"seed": seed, **loop}, **other,
                stop={"max_labels": 400}, backend={"name": "simulated", "params": {"accuracy_mean": 0.999, "careless_fraction": 0.0}},
            ))
            target = 0.95 * full_data_metric(cfg)
            needed[name] = outcome(name, Loop(cfg).run(), target).answers_to_target
        ratios.append(needed["default"] / needed["margin"])
    assert np.mean(ratios) < 0.8, ratios


def test_the_number_of_scoring_threads_never_changes_what_the_loop_buys(tmp_path):
    from clicloop.orchestrator.errors import ConfigError

    bought = []
    for threads in (1, 3):
        url = f"sqlite:///{tmp_path / f'threads{threads}.db'}"
        cfg = digits_config(url, loop={"chunk_size": 97, "engine": {"name": "local", "threads": threads}})
        Loop(config_from_dict(cfg)).run()
        with Ledger(url) as ledger:
            bought.append([t["item_id"] for r in range(4) for t in ledger.tasks("t", r)])
    assert bought[0] == bought[1] and len(bought[0]) == len(set(bought[0])) >= 30, len(bought[0])
    with pytest.raises(ConfigError, match=r"loop\.engine\.threads"):
        config_from_dict(digits_config("sqlite://", loop={"engine": {"threads": 0}}))


def test_rounds_yields_each_round_as_it_is_committed_and_stops_cleanly(tmp_path):
    from clicloop.orchestrator.ledger import Ledger

    url = f"sqlite:///{tmp_path / 'l.db'}"
    cfg = config_from_dict(digits_config(url, stop={"max_labels": 40}))
    seen = []
    for result in Loop(cfg).rounds():
        with Ledger(url) as other:  # another reader sees the round already finished
            row = other.rounds("t")[-1]
        seen.append((result.round_no, row["round_no"], row["status"]))
        if result.round_no == 1:
            break  # leaving the for stops the loop and releases it
    assert seen == [(0, 0, "finished"), (1, 1, "finished")]
    rest = Loop(cfg).run()  # a later run resumes where the first stopped
    assert [r.round_no for r in rest] == [0, 1, 2, 3, 4] and rest[-1].stop_reason is not None


def test_a_restart_or_a_new_ledger_at_the_same_path_records_the_same_ledger(tmp_path, monkeypatch):
    # The default loop warm-starts its pseudo-labels from state kept per ledger and loop name; a
    # loop starting at round 0 must not start from an earlier run's state (found 2026-12-04: a
    # restart's round 0 measured 0.6726 where the first run measured 0.6793).
    monkeypatch.setenv("CLICLOOP_WORKER_SALT", "fixed-salt")
    db = tmp_path / "l.db"
    cfg = config_from_dict(digits_config(f"sqlite:///{db}", stop={"max_labels": 60}))
    Loop(cfg).run()
    first = dump(db)
    Loop(cfg).run(restart=True)
    assert dump(db) == first
    db.unlink()
    Loop(cfg).run()
    assert dump(db) == first


@pytest.mark.parametrize("pseudo_labels", [None, "auto"])
def test_each_rounds_query_fit_starts_from_the_last_rounds_coefficients(tmp_path, monkeypatch, pseudo_labels):
    from clicloop.orchestrator import loop as loop_module

    started = []

    def spy(model, *args, **kwargs):
        started.append(model.get_params()["logisticregression__warm_start"])
        return fit_in_two(model, *args, **kwargs)

    fit_in_two = loop_module.fit_in_two
    monkeypatch.setattr(loop_module, "fit_in_two", spy)
    cfg = digits_config(f"sqlite:///{tmp_path / 'w.db'}", loop={"pseudo_labels": pseudo_labels, "cold_start_labels": 0},
                        strategy={"name": "margin"}, data={"builtin": "digits", "seed_size": 30}, stop={"max_labels": 70})
    loop = Loop(config_from_dict(cfg))
    results = loop.run()
    assert len(results) >= 4 and started[0] is False  # round 0 has nothing to start from
    assert all(started[1:]), started  # the seed labels hold all ten digits: every later fit starts warm
    assert all(r.model_version for r in results)
    assert (Path(loop.warm_.folder) / "chain.json").exists()  # kept for a resumed loop
    fresh = Loop(config_from_dict({**cfg, "ledger": f"sqlite:///{tmp_path / 'other.db'}"}))
    fresh.run()
    assert started[len(results)] is False  # a new loop never starts from another ledger's fits


def test_a_cache_folder_that_cannot_be_made_keeps_the_query_fits_in_memory(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("CLICLOOP_CACHE_DIR", str(blocked))
    cfg = digits_config(f"sqlite:///{tmp_path / 'w.db'}", loop={"pseudo_labels": None, "cold_start_labels": 0},
                        strategy={"name": "margin"}, stop={"max_labels": 40})
    loop = Loop(config_from_dict(cfg))
    assert len(loop.run()) >= 2
    assert loop.warm_.folder is None and loop.warm_.fits_  # kept, in memory
    assert "kept in memory only" in caplog.text


def test_parts_given_to_the_loop_without_the_methods_it_calls_are_refused_before_anything_is_recorded(tmp_path):
    """A model without predict_proba passed setup with ``strategy: random`` and failed mid-run,
    its round already in the ledger; a backend without expected_cost_per_task, an AttributeError;
    ``Loop(dict)``, "'dict' object has no attribute 'plugins'"."""
    from sklearn.svm import LinearSVC

    from clicloop.backends.simulated import SimulatedCrowd
    from clicloop.orchestrator.errors import ConfigError

    url = f"sqlite:///{tmp_path / 'l.db'}"
    cfg = config_from_dict(digits_config(url, strategy={"name": "random"}))
    with pytest.raises(ConfigError, match=r"the model given to Loop \(LinearSVC\) has no predict_proba.*CalibratedClassifierCV"):
        Loop(cfg, model=LinearSVC()).run()

    class NoPrice:
        def __init__(self):
            self.inner = SimulatedCrowd()

        def __getattr__(self, name):
            if name == "expected_cost_per_task":
                raise AttributeError(name)
            return getattr(self.inner, name)

    with pytest.raises(ConfigError, match=r"the backend given to Loop \(NoPrice\) has no expected_cost_per_task"):
        Loop(cfg, backend=NoPrice()).run()
    with pytest.raises(ConfigError, match="Loop takes a Config, not dict.*config_from_dict"):
        Loop(digits_config(url)).run()
    with Ledger(url) as ledger:
        assert ledger.loops() == []


def test_a_model_answering_nan_probabilities_is_an_error_not_a_metric(tmp_path):
    """A model whose predict_proba gave NaN was evaluated as predicting its first class
    everywhere: accuracy 0.0935 recorded as the round's metric."""
    from sklearn.linear_model import LogisticRegression

    from clicloop.orchestrator.errors import ModelError

    class Nan(LogisticRegression):
        def predict_proba(self, X):
            return np.full((X.shape[0], len(self.classes_)), np.nan)

    url = f"sqlite:///{tmp_path / 'l.db'}"
    with pytest.raises(ModelError, match=r"Nan.predict_proba gave non-finite probabilities"):
        Loop(config_from_dict(digits_config(url, strategy={"name": "random"})), model=Nan()).run()
    with Ledger(url) as ledger:
        assert all(r["metric"] is None for r in ledger.rounds("t"))
