"""The whole post-deployment loop on synthetic intents: ingest -> triage -> review through the
simulated crowd -> learn -> gate -> promote / rollback -> measure (SQLite and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from clicloop.backends.simulated import SimulatedCrowd
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.postdeploy import DeploymentStore, ingest, review_loop
from clicloop.orchestrator.postdeploy import metrics
from clicloop.orchestrator.postdeploy.conditions import TriageContext
from clicloop.orchestrator.postdeploy.errors import PromotionError
from clicloop.orchestrator.postdeploy.learn import Learner, due, featurize
from clicloop.orchestrator.postdeploy.review import Reviewer
from clicloop.orchestrator.postdeploy.triage import Triage, build_policy
from tests.orchestrator.postdeploy.synth import INTENTS, NEW_INTENT, fit_model, records, utterances

POLICY = {"any": [{"name": "low-confidence", "params": {"threshold": 0.6}}, "user-flagged",
                  {"name": "random-audit", "params": {"rate": 0.25}}]}


def test_corrections_flow_back_and_only_a_better_model_is_promoted(ledger_url: str) -> None:
    from clicloop.orchestrator.training.models import tfidf_logreg

    base = utterances(120, seed=1)
    model = fit_model(base)
    traffic = utterances(400, seed=3, intents={**INTENTS, **NEW_INTENT}, oos_share=0.1)  # a new intent and OOS requests
    recs = records(model, traffic, "v1", flag_errors=0.5)
    truth = {r["id"]: label for r, (_, label) in zip(recs, traffic)}
    true_error = float(np.mean([r["predicted_label"] != truth[r["id"]] for r in recs]))
    all_labels = sorted({*INTENTS, *NEW_INTENT})
    with Ledger(ledger_url) as ledger:
        store = DeploymentStore(ledger, "assistant")
        learner = Learner(store, lambda: tfidf_logreg(C=10.0), ([t for t, _ in base], [y for _, y in base]), min_slice=20)
        learner.deploy("v1", model, n_train=len(base))
        assert ingest(ledger, "assistant", recs).accepted == len(recs)
        triage = Triage(store, "default", build_policy(POLICY), TriageContext(model=model, featurize=featurize))
        decided = triage.run()
        assert decided.decided == len(recs) and decided.audits > 50
        crowd = SimulatedCrowd(accuracy_mean=0.99, careless_fraction=0.0, reward=0.05)
        reviewer = Reviewer(store, crowd, "simulated", all_labels, truth=truth, poll_s=0.0, clock=lambda: 1_800_000_000.0)
        summary = reviewer.run()
        assert summary.answered == decided.selected and summary.corrected > 0 and summary.out_of_scope > 0
        assert reviewer.run().tasks == 0  # everything selected is reviewed once

        # review effort sits in its own loop, tasks of kind "review"
        spent = ledger.spent(review_loop("assistant"))
        assert spent["answers"] == summary.answered and spent["total_hours"] > 0 and spent["cost"] > 0
        assert {t["kind"] for t in ledger.tasks(review_loop("assistant"), 0)} == {"review"}
        assert len(ledger.labels(review_loop("assistant"))) == summary.answered  # corrections joined the labeled set

        est = metrics.audit_error_rate(store)
        assert est.n == decided.audits and est.low <= true_error <= est.high  # unbiased, with its interval
        fixed = metrics.errors_fixed_per_hour(store)
        assert fixed["errors_fixed"] == summary.corrected + summary.out_of_scope and fixed["per_hour"] > 0
        assert metrics.time_to_correction(store)["n"] == fixed["errors_fixed"]

        assert due(store, every_reviews=10)
        candidate = learner.retrain("v2")
        assert {"banking", "out_of_scope"} <= set(store.versions()["v2"]["labels"])
        gate = learner.gate(candidate)
        assert gate.promoted and gate.error_candidate < gate.error_serving and store.serving() == "v2"
        worse = learner._register("v3", fit_model(base[:30]), parent="v2", n_train=30, n_corrections=0)
        assert worse is None and not learner.gate("v3").promoted and store.serving() == "v2"
        assert learner.rollback() == "v1" and store.serving() == "v1"
        with pytest.raises(PromotionError, match="unknown model version"):
            learner.rollback("v9")

        # v2 serves new traffic; the before/after figures come from audits of each version's traffic
        learner.store.record_promotion("promote", "v2", reason="again")
        later = utterances(300, seed=4, intents={**INTENTS, **NEW_INTENT}, oos_share=0.1)
        recs2 = records(learner.model("v2"), later, "v2", prefix="q", start=1_700_100_000.0)
        truth.update({r["id"]: label for r, (_, label) in zip(recs2, later)})
        ingest(ledger, "assistant", recs2)
        triage.run()
        reviewer.run()
        effect = metrics.promotion_effects(store)[-1]
        assert effect["from"] == "v1" and effect["to"] == "v2"
        assert effect["after"]["rate"] < effect["before"]["rate"]
        report = metrics.summary(store)
        assert report["serving"] == "v2" and report["triage"][0]["policy"] == "default"
        reviewer.close()


def test_wilson_interval_matches_the_textbook_values() -> None:
    rate, low, high = metrics.wilson(10, 100)
    assert rate == 0.1 and low == pytest.approx(0.0552, abs=1e-4) and high == pytest.approx(0.1744, abs=1e-4)
    assert metrics.wilson(0, 0) == (None, None, None)
    assert metrics.wilson(0, 20)[1] == 0.0


def test_a_rollback_after_a_re_promotion_serves_the_version_before(tmp_path) -> None:
    """Found 2026-12-06: promoting the version already serving recorded v2 -> v2, and a rollback
    then "rolled back" to v2 itself; v1 never served again."""
    from clicloop.orchestrator.postdeploy.learn import rollback

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        store = DeploymentStore(ledger, "bot")
        for v in ("v1", "v2"):
            store.register_version(v, ["a", "b"])
        store.record_promotion("deploy", "v1")
        store.record_promotion("promote", "v2")
        from sqlalchemy import insert

        from clicloop.orchestrator.ledger import schema as s

        with ledger.engine_.begin() as conn:  # a no-op v2 -> v2, as older clicloop recorded it
            conn.execute(insert(s.pd_promotions).values(deployment="bot", seq=3, action="promote", version="v2",
                                                        previous="v2", reason="re-promoted", recorded_at=0.0))
        assert rollback(store) == "v1" and store.serving() == "v1"
        with pytest.raises(PromotionError, match="'v1' is already serving"):
            rollback(store, to="v1")


def test_serving_the_serving_version_records_nothing(tmp_path) -> None:
    """Found 2026-12-07 in review: only `deploy promote` refused it; `deploy register --serve` of
    the serving version, or the Python API, still recorded v -> v."""
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        store = DeploymentStore(ledger, "bot")
        store.register_version("v1", ["a", "b"])
        first = store.record_promotion("deploy", "v1")
        assert store.record_promotion("deploy", "v1") == first  # a deploy script run twice
        with pytest.raises(PromotionError, match="'v1' is already serving"):
            store.record_promotion("promote", "v1")
        assert [p["seq"] for p in store.promotions()] == [first]
