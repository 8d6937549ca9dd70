"""The wage floor on total time: pricing, strict pauses, adjustment payments, the labor card."""

from decimal import Decimal

import numpy as np
import pytest

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.fairwork.wages import apply_adjustments, below_floor, proposed_adjustments
from clicloop.orchestrator.reporting.laborcard import labor_card, render_markdown
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.accounting import by_worker
from clicloop.orchestrator.loop import Loop
from tests.conftest import digits_config

CROWD = {"name": "simulated", "params": {"n_workers": 5, "qualification_seconds": 60, "reward": 0.01}}


def test_priced_rewards_lift_the_median_wage_on_total_time_to_the_floor(ledger_url):
    cfg = digits_config(ledger_url, backend=CROWD, stop={"max_labels": 200},
                        wage_floor={"amount": 12.02, "currency": "EUR", "price_rewards": True})
    Loop(config_from_dict(cfg)).run()
    with Ledger(ledger_url) as ledger:
        tasks = ledger.tasks("t", 0), ledger.tasks("t", 10)
        assert tasks[0][0]["reward_micros"] is None  # nothing measured yet: the backend's own reward
        priced = tasks[1][0]["reward_micros"] / 1e6
        assert priced > 0.03  # 0.01 per task paid far below the floor; pricing raised it
        late = [w for w in by_worker(ledger.engine_, "t")]
        wages = np.array([w["wage_total_time"] for w in late])
    # the first rounds were underpaid, so not everyone is above the floor, but pricing moved the median
    assert np.median(wages) > 6.0


def test_strict_mode_pauses_until_adjustments_are_paid(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    cfg = digits_config(url, backend=CROWD, stop={"max_labels": 40}, wage_floor={"strict": True})
    results = Loop(config_from_dict(cfg)).run()
    assert results[-1].round_no == 1 and results[-1].stop_reason.startswith("wage floor (strict)")
    assert "clicloop ledger adjust with this loop's config and --apply" in results[-1].stop_reason  # no literal CONFIG
    config = config_from_dict(cfg)
    with Ledger(url) as ledger:
        proposals = proposed_adjustments(ledger, "t", config.wage_floor)
        assert proposals and all(p.amount > 0 for p in proposals)
        assert apply_adjustments(ledger, proposals, 1) == len(proposals)
        assert apply_adjustments(ledger, proposals, 1) == 0  # paid once
        assert below_floor(ledger, "t", config.wage_floor) == []
    results = Loop(config_from_dict(cfg)).run()  # resumes: the pause is lifted by the payments
    assert results[-1].round_no == 2 and results[-1].stop_reason.startswith("wage floor (strict)")
    assert sum(r.answers for r in results) == 20


def test_the_labor_card_adds_up(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Loop(config_from_dict(digits_config(url, stop={"max_labels": 30}))).run()
    with Ledger(url) as ledger:
        ledger.review("t/0/" + ledger.tasks("t", 0)[0]["item_id"] + "/0", accept=False, reason="blank answer")
        worker = by_worker(ledger.engine_, "t")[0]
        ledger.pay("bonus-1", "t", 1, worker["backend"], worker["worker"], "bonus", 0.5, "EUR")
        ledger.pay("fee-1", "t", 1, worker["backend"], worker["worker"], "fee", 0.1, "EUR")
        ledger.pay("late-bonus", "t", 2, worker["backend"], worker["worker"], "bonus", 9.0, "EUR")  # after v2: not in its card
        card = labor_card(ledger, "t-r2")
        spent_two_rounds = ledger.spent("t", (0, 1))
    assert card["labels"] == {"trained_on": 40, "bought_answers": 20}
    # the card's totals (summed from the per-worker rows) equal the ledger's own totals over rounds 0-1
    assert card["hours"]["total"] == pytest.approx(spent_two_rounds["total_hours"])
    assert card["hours"]["active"] == pytest.approx(spent_two_rounds["active_hours"])
    assert card["money"]["total_cost"] == spent_two_rounds["cost"] == Decimal("1.080000")  # exact: 20 x 0.02 x 1.2 + 0.5 + 0.1
    assert card["money"]["paid_to_workers"] == spent_two_rounds["income"] == Decimal("0.900000")
    assert card["money"]["retroactive"] == 0 and card["money"]["planned_pay"] == Decimal("0.9")
    assert card["rejections"] == {"count": 1, "reasons": {"blank answer": 1}}
    assert sum(card["hours"]["unpaid_by_kind"].values()) == pytest.approx(card["hours"]["unpaid"])
    text = render_markdown(card)
    assert "# Labor card: t-r2" in text and "blank answer" in text and "below the 12.02 floor" in text
