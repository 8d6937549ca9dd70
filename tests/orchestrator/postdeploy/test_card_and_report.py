"""The labor card, the report and the per-day figures of a deployment; review guards."""

from __future__ import annotations

import pytest

from clicloop.backends.simulated import SimulatedCrowd
from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.reporting.laborcard import labor_card, render_markdown
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.postdeploy import DeploymentStore, ingest, metrics, report
from clicloop.orchestrator.postdeploy.conditions import TriageContext
from clicloop.orchestrator.postdeploy.errors import ReviewError
from clicloop.orchestrator.postdeploy.learn import Learner, featurize
from clicloop.orchestrator.postdeploy.review import Reviewer
from clicloop.orchestrator.postdeploy.triage import Triage, build_policy
from tests.conftest import digits_config
from tests.orchestrator.postdeploy.synth import INTENTS, NEW_INTENT, fit_model, records, utterances

DAY = 86_400.0
START = 1_767_225_600.0  # 2026-01-01 UTC
POLICY = {"any": ["user-flagged", {"name": "low-confidence", "params": {"threshold": 0.5}},
                  {"name": "random-audit", "params": {"rate": 0.3}}]}


def _deployment(ledger: Ledger, version: str) -> tuple[DeploymentStore, Learner, dict[str, str]]:
    """A deployment serving ``version`` (a toy intent model), two days of reviewed traffic, and a
    retrained, promoted v2."""
    from clicloop.orchestrator.training.models import tfidf_logreg

    base = utterances(100, seed=1)
    model = fit_model(base)
    store = DeploymentStore(ledger, "bot")
    learner = Learner(store, lambda: tfidf_logreg(C=10.0), ([t for t, _ in base], [y for _, y in base]), min_slice=20)
    learner.deploy(version, model, n_train=len(base))
    traffic = utterances(240, seed=5, intents={**INTENTS, **NEW_INTENT}, oos_share=0.1)
    recs = records(model, traffic, version, start=START, step=720.0, flag_errors=0.5)  # 240 x 12 min: two days
    truth = {r["id"]: y for r, (_, y) in zip(recs, traffic)}
    ingest(ledger, "bot", recs)
    Triage(store, "default", build_policy(POLICY), TriageContext(model=model, featurize=featurize)).run()
    reviewer = Reviewer(store, SimulatedCrowd(careless_fraction=0.0), "simulated", sorted({*INTENTS, *NEW_INTENT}), truth=truth,
                        poll_s=0.0, clock=lambda: START + 2 * DAY + 3600)
    reviewer.run()
    reviewer.close()
    assert learner.gate(learner.retrain("v2")).promoted
    return store, learner, truth


def test_a_deployed_labeling_version_keeps_its_card_and_gains_post_deployment_figures(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 30}))).run()
    with Ledger(url) as ledger:
        before = labor_card(ledger, "t-r2")
        assert before["post_deployment_corrections"] is None
        store, _, _ = _deployment(ledger, "t-r2")  # the loop's version ships; its review rounds carry the same name
        card = labor_card(ledger, "t-r2")
        (section,) = card["post_deployment_corrections"]
        est = metrics.audit_error_rate(store, model_version="t-r2")
        v2 = labor_card(ledger, "v2")
    assert card["loop"] == "t" and card["hours"] == before["hours"] and card["labels"] == before["labels"]
    assert section["deployment"] == "bot" and not section["serving_now"] and section["predictions_served"] == 240
    assert section["audited_error_rate"]["n"] == est.n > 0 and section["errors_found"] > 0
    assert [p["action"] for p in section["promotions"]] == ["deploy"]
    text = render_markdown(card)
    assert "Post-deployment (bot)" in text and "240 predictions" in text
    assert v2["loop"] == "bot:review" and v2["labels"]["bought_answers"] > 0 and v2["hours"]["total"] > 0
    (s2,) = v2["post_deployment_corrections"]
    assert s2["serving_now"] and s2["production_corrections_in_training"] > 0
    assert s2["review_work_before"]["answers"] == v2["labels"]["bought_answers"]
    # "trained on 114 labels (77 human answers bought)" read as if all 77 trained it: say how many did
    assert (f"({v2['labels']['bought_answers']} human answers bought through clicloop; "
            f"{s2['production_corrections_in_training']} of them corrections in its training set") in render_markdown(v2)
    assert v2["metric"]["name"] == "audited error at its gate" and v2["metric"]["value"] is not None


def test_report_and_review_days_add_up(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        store, _, _ = _deployment(ledger, "v1")
        data = report.build(store)
        days = metrics.review_days(ledger.engine_, "bot")
        other = metrics.review_days(ledger.engine_, "nobody")
    assert data["serving"] == "v2" and data["ingest"]["accepted"] == 240
    assert len(days) == 1 and days[0]["day"] == START + 2 * DAY  # every review came in on day three
    assert days[0]["reviews"] == data["review"]["reviews"] and days[0]["errors_fixed"] == data["review"]["errors_fixed"]
    assert days[0]["audited"] == data["error_rate"]["n"] and days[0]["audit_errors"] == data["error_rate"]["errors"]
    assert 0 < days[0]["human_hours"] <= data["review"]["hours"]
    assert other == []
    text = report.markdown(data)
    assert text.startswith("# Post-deployment report: bot") and "promote v1 -> v2" in text
    assert f"({data['error_rate']['errors']} errors in {data['error_rate']['n']} audits)" in text


def test_review_refuses_ground_truth_it_cannot_express_before_sending_anything(ledger_url: str) -> None:
    base = utterances(60, seed=1)
    model = fit_model(base)
    traffic = utterances(40, seed=2, intents={**INTENTS, **NEW_INTENT})
    recs = records(model, traffic, "v1")
    truth = {r["id"]: y for r, (_, y) in zip(recs, traffic)}
    with Ledger(ledger_url) as ledger:
        store = DeploymentStore(ledger, "bot")
        store.register_version("v1", sorted(INTENTS))
        ingest(ledger, "bot", recs)
        Triage(store, "default", build_policy({"name": "random-audit", "params": {"rate": 1.0}})).run()
        narrow = Reviewer(store, SimulatedCrowd(), "simulated", sorted(INTENTS), truth=truth, poll_s=0.0)
        with pytest.raises(ReviewError, match="not among the review labels"):
            narrow.run()
        partial = Reviewer(store, SimulatedCrowd(), "simulated", sorted({*INTENTS, *NEW_INTENT}),
                           truth=dict(list(truth.items())[:10]), poll_s=0.0)
        with pytest.raises(ReviewError, match="no label for 30 prediction"):
            partial.run()
        assert ledger.rounds("bot:review") == [] and store.reviews() == []
        full = Reviewer(store, SimulatedCrowd(), "simulated", sorted({*INTENTS, *NEW_INTENT}), truth=truth, poll_s=0.0)
        assert full.run().answered == 40
        full.close()


def test_back_pay_on_review_work_is_its_own_line_not_the_reviews_cost(tmp_path) -> None:
    """`ledger adjust --apply` on a review loop moved `deploy status`'s cost from 1.85 to 19.21 EUR
    and its cost per error fixed from 0.03 to 0.33, with no line saying why; the report kept the
    planned cost with back-pay on its own line. Now every post-deployment view does the same."""
    from clicloop.orchestrator.config import WageFloor
    from clicloop.orchestrator.dashboard.base import Context
    from clicloop.orchestrator.dashboard.postdeploy import post_deployment
    from clicloop.orchestrator.dashboard.source import Filters
    from clicloop.orchestrator.fairwork.wages import apply_adjustments, proposed_adjustments

    floor = WageFloor(amount=50, currency="EUR")  # far above the simulated reviewers' pay: everyone gets back-pay
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        store, _, _ = _deployment(ledger, "v1")
        before = (metrics.errors_fixed_per_hour(store), labor_card(ledger, "v2")["post_deployment_corrections"][0],
                  {n.key: n.value for n in post_deployment(Context(ledger.engine_, Filters())).numbers})
        booked = apply_adjustments(ledger, proposed_adjustments(ledger, "bot:review", floor), 0)
        back_pay = ledger.spent("bot:review")["adjustments"]
        after = (metrics.errors_fixed_per_hour(store), labor_card(ledger, "v2")["post_deployment_corrections"][0],
                 {n.key: n.value for n in post_deployment(Context(ledger.engine_, Filters())).numbers})
        text = "\n".join(report.lines(report.build(store)))
    assert booked > 0 and back_pay > 0
    assert after[0]["cost"] == before[0]["cost"] and after[0]["cost_per_error"] == before[0]["cost_per_error"]
    assert after[0]["back_pay"] == back_pay and before[0]["back_pay"] == 0
    assert after[1]["review_work_before"]["cost"] == before[1]["review_work_before"]["cost"]
    assert after[2]["cost_per_error:bot"] == before[2]["cost_per_error:bot"]
    assert f"back-pay {back_pay:.2f} EUR" in text


def test_ledger_text_in_the_card_is_shown_literally_by_a_markdown_renderer(tmp_path) -> None:
    """Found 2026-12-06: the card's Markdown carried the purpose raw, so a renderer that passes
    HTML through (MkDocs, many wikis) ran ``<script>`` in it; a reason could be a link."""
    from markdown_it import MarkdownIt

    url = f"sqlite:///{tmp_path / 'l.db'}"
    hostile = '<script>document.title="x"</script> [claim your wages](https://evil.example) *now*'
    cfg = digits_config(url, stop={"max_labels": 20})
    cfg["loop"]["purpose"] = "Read digits. " + hostile
    Loop(config_from_dict(cfg)).run()
    with Ledger(url) as ledger:
        card = labor_card(ledger, "t-r2")
    card["rejections"] = {"count": 1, "reasons": {hostile: 1}}
    html = MarkdownIt("commonmark", {"html": True}).render(render_markdown(card))
    assert "<script" not in html and "<a " not in html and "<em>now</em>" not in html
    assert html.count('&lt;script&gt;document.title=&quot;x&quot;&lt;/script&gt; [claim your wages](https://evil.example) *now*') == 2


def test_a_carriage_return_in_ledger_text_starts_no_heading_or_list() -> None:
    """Found 2026-12-07 in review: CommonMark reads a bare carriage return as a line break, so a
    purpose 'Sort mail\\r===\\r1. list' made the card's purpose line a heading and a list."""
    from markdown_it import MarkdownIt

    from clicloop.orchestrator.reporting.markdown import md_text

    html = MarkdownIt("commonmark", {"html": True}).render(f"*Purpose:* {md_text('Sort mail' + chr(13) + '===' + chr(13) + '> quoted' + chr(13) + '1. list')}\n")
    assert "<h1>" not in html and "<ol>" not in html and "<blockquote>" not in html and "Sort mail === &gt; quoted 1. list" in html
