"""The built-in triage policies, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from clicloop.orchestrator.hookspecs import Register, hookimpl


@hookimpl
def clicloop_register_triage_policies(register: Register) -> None:
    from clicloop.orchestrator.postdeploy.conditions import (DailyBudget, LowConfidence, Novelty, RandomAudit, RandomReview, StrategyScore,
                                                    UserFlagged)

    register("low-confidence", LowConfidence)
    register("user-flagged", UserFlagged)
    register("random-audit", RandomAudit)
    register("random-review", RandomReview)
    register("novelty", Novelty)
    register("strategy-score", StrategyScore)
    register("daily-budget", DailyBudget)
