"""The post-deployment part of the labor card (:mod:`clicloop.orchestrator.reporting.laborcard`).

For a model version that a deployment registered: the review work and corrections behind it,
what its production traffic looked like under review (audited error rate with its interval),
and the promotions and rollbacks it went through. A version retrained from corrections has no
labeling round of its own; :func:`deployed_card_base` points its card at the review work that
produced its corrections.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import case, func, inspect, select

from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.postdeploy.store import DeploymentStore, review_loop

m, pr, rd = s.pd_models.c, s.pd_promotions.c, s.rounds.c


def _has_tables(ledger: Any) -> bool:
    with ledger.engine_.connect() as conn:
        return inspect(conn).has_table(s.pd_models.name)


def _reviews_before(ledger: Any, deployment: str, created_at: float) -> int:
    """Review batches (rounds of the review loop) started before ``created_at``."""
    with ledger.engine_.connect() as conn:
        last = conn.execute(select(func.max(rd.round_no)).where(rd.loop == review_loop(deployment),
                                                                rd.recorded_at <= created_at)).scalar()
    return 0 if last is None else int(last) + 1


def deployed_card_base(ledger: Any, version: str) -> tuple[str, int, dict[str, Any], int, str] | None:
    """For a deployed version: (review loop, review batches before it, metric, training size,
    purpose), or None when no deployment registered ``version``."""
    from clicloop.orchestrator.postdeploy.review import PURPOSE

    if not _has_tables(ledger):
        return None
    with ledger.engine_.connect() as conn:
        row = conn.execute(select(s.pd_models).where(m.version == version).order_by(m.created_at, m.deployment).limit(1)).first()
        if row is None:
            return None
        gate = conn.execute(select(pr.error_candidate).where(pr.deployment == row.deployment, pr.version == version,
                                                             pr.error_candidate.is_not(None)).order_by(pr.seq.desc()).limit(1)).scalar()
    metric = {"name": "audited error at its gate", "value": gate}
    return review_loop(row.deployment), _reviews_before(ledger, row.deployment, row.created_at), metric, int(row.n_train), PURPOSE


def post_deployment(ledger: Any, version: str) -> list[dict[str, Any]] | None:
    """Per deployment that registered ``version``: corrections behind it, the review work that
    made them, its audited production error rate, and its promotions. None: never deployed."""
    from clicloop.orchestrator.ledger.accounting import spent
    from clicloop.orchestrator.postdeploy.metrics import audit_error_rate

    if not _has_tables(ledger):
        return None
    with ledger.engine_.connect() as conn:
        rows = conn.execute(select(s.pd_models).where(m.version == version).order_by(m.deployment)).all()
    if not rows:
        return None
    out = []
    for row in rows:
        store = DeploymentStore(ledger, row.deployment)
        before = _reviews_before(ledger, row.deployment, row.created_at)
        work = spent(ledger.engine_, review_loop(row.deployment), (0, before - 1))
        p, rv = s.pd_predictions.c, s.pd_reviews.c
        with ledger.engine_.connect() as conn:
            served = conn.execute(select(func.count()).where(p.deployment == row.deployment, p.model_version == version,
                                                             p.status == "accepted")).scalar_one()
            reviewed, errors = conn.execute(select(func.count(), func.coalesce(func.sum(case((rv.verdict != "confirm", 1), else_=0)), 0))
                                            .where(rv.deployment == row.deployment, rv.model_version == version)).one()
        out.append({
            "deployment": row.deployment, "parent": row.parent, "serving_now": store.serving() == version,
            "trained_on": int(row.n_train), "production_corrections_in_training": int(row.n_corrections),
            "review_work_before": {"answers": work["answers"], "hours": work["total_hours"], "active_hours": work["active_hours"],
                                   "cost": work["cost"] - work["adjustments"], "back_pay": work["adjustments"]},
            "predictions_served": int(served), "reviews_of_its_predictions": int(reviewed), "errors_found": int(errors or 0),
            "audited_error_rate": asdict(audit_error_rate(store, model_version=version)),
            "promotions": [{"seq": x["seq"], "action": x["action"], "reason": x["reason"]}
                           for x in store.promotions() if x["version"] == version],
        })
    return out


def markdown_lines(section: list[dict[str, Any]] | None, currency: str) -> list[str]:
    """The post-deployment part of the card as Markdown bullets (none when never deployed)."""
    from clicloop.orchestrator.reporting.markdown import md_text

    lines = []
    for d in section or []:
        e, w = d["audited_error_rate"], d["review_work_before"]
        rate = (f"{e['rate']:.3f} [{e['low']:.3f}, {e['high']:.3f}] from {e['n']} random audits" if e["n"]
                else "no random audit of its traffic reviewed yet")
        lines += [
            f"- Post-deployment ({md_text(d['deployment'])}{', serving now' if d['serving_now'] else ''}): trained on "
            f"{d['trained_on']} labels, {d['production_corrections_in_training']} of them production reviews; the review "
            f"work before it: {w['answers']} reviews, {w['hours']:.2f} h, {w['cost']:.2f} {currency}",
            f"  - its traffic: {d['predictions_served']} predictions, {d['reviews_of_its_predictions']} reviewed, "
            f"{d['errors_found']} errors found; production error rate {rate}",
        ]
        lines += [f"  - {p['action']} #{p['seq']}: {md_text(p['reason']) if p['reason'] else '-'}" for p in d["promotions"]]
    return lines
