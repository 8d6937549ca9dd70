"""Triage policies: each condition, AND / OR, deterministic audits, the daily budget, the record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.postdeploy import DeploymentStore, ingest
from clicloop.orchestrator.postdeploy.conditions import RandomAudit, TriageContext
from clicloop.orchestrator.postdeploy.errors import TriageConfigError
from clicloop.orchestrator.postdeploy.learn import featurize
from clicloop.orchestrator.postdeploy.triage import Triage, build_policy, triage_registry
from tests.orchestrator.postdeploy.synth import INTENTS, fit_model, records, utterances


def rows(n: int = 6, **kw: object) -> list[dict]:
    out = []
    for i in range(n):
        r = {"prediction_id": f"p{i}", "predicted_label": "music", "confidence": 0.1 + 0.15 * i, "feedback": None,
             "text": "play song", "features_json": None, "predicted_at": 1_700_000_000.0 + i, "model_version": "v1"}
        out.append({**r, **kw})
    return out


def test_every_builtin_policy_is_registered_through_the_hook() -> None:
    reg = triage_registry()
    assert {"low-confidence", "user-flagged", "random-audit", "random-review", "novelty", "strategy-score",
            "daily-budget"} <= set(reg.names("triage"))
    assert reg.get("triage", "random-audit").plugin == "clicloop.orchestrator.postdeploy.plugin"


def test_low_confidence_per_label_and_user_flag_combine_with_and_or() -> None:
    data = rows()
    data[5]["feedback"] = "not_what_i_asked"
    data[4]["predicted_label"] = "timer"
    ctx = TriageContext()
    low = build_policy({"name": "low-confidence", "params": {"threshold": 0.3, "per_label": {"timer": 0.9}}})
    assert list(np.flatnonzero(low.evaluate(data, ctx).mask)) == [0, 1, 4]
    either = build_policy({"any": [{"name": "low-confidence", "params": {"threshold": 0.3}}, "user-flagged"]})
    out = either.evaluate(data, ctx)
    assert list(np.flatnonzero(out.mask)) == [0, 1, 5]
    assert out.fired[5] == [{"condition": "user-flagged", "value": "not_what_i_asked"}]
    both = build_policy({"all": [{"name": "low-confidence", "params": {"threshold": 0.9}}, "user-flagged"]})
    assert list(np.flatnonzero(both.evaluate(data, ctx).mask)) == [5]
    with pytest.raises(ConfigError, match="unknown triage 'nope'"):
        build_policy({"any": ["nope"]})
    with pytest.raises(ConfigError, match="accepts"):
        build_policy({"name": "low-confidence", "params": {"treshold": 0.3}})
    with pytest.raises(TriageConfigError, match="non-empty list"):
        build_policy({"all": []})
    with pytest.raises(ConfigError, match="one of 'hours' or 'money'"):
        build_policy({"name": "daily-budget"})


def test_random_audit_is_a_stable_function_of_the_prediction_id() -> None:
    audit = RandomAudit(rate=0.1)
    ids = [f"req-{i}" for i in range(20_000)]
    draws = np.array([audit.draw(i) for i in ids])
    assert np.array_equal(draws, np.array([RandomAudit(rate=0.1).draw(i) for i in ids]))
    assert 0.09 < float(np.mean(draws < 0.1)) < 0.11
    assert not np.array_equal(draws, np.array([RandomAudit(rate=0.1, salt="other").draw(i) for i in ids]))


def test_random_review_is_training_data_not_an_audit_and_a_cap_keeps_a_random_subset(ledger_url: str) -> None:
    train = utterances(100, seed=1)
    model = fit_model(train)
    with Ledger(ledger_url) as ledger:
        store = DeploymentStore(ledger, "assistant")
        store.register_version("v1", [str(c) for c in model.classes_])
        ingest(ledger, "assistant", records(model, utterances(200, seed=2), "v1", start=1_767_225_600.0, step=60.0))  # one UTC day
        spec = {"all": ["random-review", {"name": "daily-budget", "params": {"hours": 0.25, "seconds_per_review": 30}}]}
        summary = Triage(store, "rand", build_policy(spec)).run()
        chosen = {r["prediction_id"] for r in store.to_review("rand")}
    assert (summary.selected, summary.audits) == (30, 0)
    ids = [f"p{i}" for i in range(200)]
    draws = {i: RandomAudit(salt="review").draw(i) for i in ids}
    assert chosen == set(sorted(ids, key=draws.__getitem__)[:30])  # the 30 smallest draws, not the first 30 by time
    assert chosen != set(ids[:30])


def test_novelty_without_its_reference_data_says_what_to_give() -> None:
    with pytest.raises(ValueError, match="training vocabulary"):
        build_policy("novelty").evaluate(rows(2), TriageContext())
    with pytest.raises(ValueError, match="training vectors"):
        build_policy({"name": "novelty", "params": {"max_unknown_share": None, "min_distance": 0.3}}).evaluate(
            rows(2), TriageContext(featurize=featurize))


def test_novelty_flags_unknown_words_and_far_vectors() -> None:
    data = rows(3)
    data[1]["text"] = "qwerty zxcv play"
    out = build_policy({"name": "novelty", "params": {"max_unknown_share": 0.5}}).evaluate(
        data, TriageContext(vocabulary=frozenset({"play", "song"})))
    assert list(np.flatnonzero(out.mask)) == [1]
    assert out.fired[1][0]["value"]["unknown_share"] == pytest.approx(2 / 3, abs=1e-3)
    vec = rows(2)
    vec[0]["features_json"], vec[1]["features_json"] = json.dumps([1.0, 0.0]), json.dumps([0.0, 1.0])
    ctx = TriageContext(featurize=featurize, reference=np.array([[1.0, 0.0]], dtype=np.float32))
    out = build_policy({"name": "novelty", "params": {"max_unknown_share": None, "min_distance": 0.5}}).evaluate(vec, ctx)
    assert list(out.mask) == [False, True]


def test_decisions_are_recorded_with_what_fired_and_the_daily_budget_caps_them(ledger_url: str) -> None:
    train = utterances(200, seed=1)
    model = fit_model(train)
    traffic = utterances(300, seed=2, oos_share=0.1)
    with Ledger(ledger_url) as ledger:
        store = DeploymentStore(ledger, "assistant")
        store.register_version("v1", [str(c) for c in model.classes_])
        ingest(ledger, "assistant", records(model, traffic, "v1", step=600.0, flag_errors=0.5))  # 300 x 10 min: 3 days
        spec = {"all": [{"any": [{"name": "strategy-score", "params": {"strategy": "margin", "threshold": 0.6}},
                                 "user-flagged", {"name": "random-audit", "params": {"rate": 0.05}}]},
                        {"name": "daily-budget", "params": {"hours": 0.05, "seconds_per_review": 30}}]}
        ctx = TriageContext(model=model, featurize=featurize)
        summary = Triage(store, "pol", build_policy(spec), ctx).run(batch=70)
        assert summary.decided == 300
        again = Triage(store, "pol", build_policy(spec), ctx).run()
        assert again.decided == 0  # decided once, never re-rolled
        from sqlalchemy import select

        from clicloop.orchestrator.ledger import schema as s

        with store.engine.connect() as conn:
            decided = [dict(r._mapping) for r in conn.execute(select(s.pd_triage))]
    per_day: dict[str, int] = {}
    for d in decided:
        fired = json.loads(d["fired_json"])
        per_day[d["day"]] = per_day.get(d["day"], 0) + d["review"]
        if d["review"]:
            assert any(f["condition"] in ("strategy-score:margin", "user-flagged", "random-audit") for f in fired)
            assert fired[-1]["condition"] == "daily-budget" and "exhausted" not in fired[-1]
        if d["audit"]:
            assert d["review"] and any(f["condition"] == "random-audit" for f in fired)
    assert max(per_day.values()) == 6  # 0.05 h / 30 s
    assert any(json.loads(d["fired_json"])[-1].get("exhausted") for d in decided if not d["review"] and d["fired_json"] != "[]")


def test_a_money_budget_caps_by_the_cost_per_review_or_the_mean_recorded_so_far() -> None:
    from clicloop.orchestrator.postdeploy.conditions import DailyBudget

    class Spent:  # the review loop's accounting, as DeploymentStore.review_spent returns it
        def __init__(self, answers: int, cost: float, hours: float) -> None:
            self.figures = {"answers": answers, "cost": cost, "total_hours": hours}

        def review_spent(self) -> dict:
            return self.figures

    assert DailyBudget(money=2.0, cost_per_review=0.25).capacity(TriageContext()) == 8
    assert DailyBudget(money=2.0).capacity(TriageContext(store=Spent(10, 0.5, 1.0))) == 40  # 0.05 per review so far
    assert DailyBudget(hours=1.0).capacity(TriageContext(store=Spent(10, 0.5, 0.1))) == 100  # 36 s per review so far
    assert DailyBudget(hours=1.0).capacity(TriageContext(store=Spent(0, 0.0, 0.0))) == 60  # 60 s until reviews exist


def test_a_money_budget_is_exact_money() -> None:
    """0.3 a day at 0.1 a review pays three reviews (in floats 0.3 / 0.1 is 2.9999999999999996: two)."""
    from clicloop.orchestrator.postdeploy.conditions import DailyBudget

    assert DailyBudget(money=0.3, cost_per_review=0.1).capacity(TriageContext()) == 3
    assert DailyBudget(money="0.7", cost_per_review="0.1").capacity(TriageContext()) == 7
    with pytest.raises(ValueError, match="cost_per_review"):
        DailyBudget(money=1, cost_per_review="ten cents")
