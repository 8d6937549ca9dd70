"""Post-deployment measures for the report, the labor card and the dashboard; counts and sums in SQL.

- :func:`audit_error_rate`: the production error rate estimated from random audits only (each
  prediction had the same audit probability, so the audited share of errors is unbiased), with
  a Wilson score interval.
- :func:`errors_fixed_per_hour`: reviews that found an error, per human hour of review (unpaid
  time included), and the cost.
- :func:`time_to_correction`: from the prediction to the review that corrected it.
- :func:`promotion_effects`: the audited error rate of the predictions served by the version
  before and after each promotion or rollback, and the gate's figures.
- :func:`review_days`: per UTC day of review: reviews, errors fixed, hours, audits (dashboards).
- :func:`summary`: all of the above as one JSON-ready dict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from sqlalchemy import case, func, select

from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.postdeploy.store import DeploymentStore, review_loop
from clicloop.orchestrator.ledger.money import ratio

r, p, t = s.pd_reviews.c, s.pd_predictions.c, s.pd_triage.c


@dataclass(frozen=True)
class Estimate:
    """``errors`` of ``n`` audits: ``rate`` with a ``level`` interval [``low``, ``high``] (None if n = 0)."""

    n: int
    errors: int
    rate: float | None
    low: float | None
    high: float | None
    level: float


def wilson(errors: int, n: int, level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """Rate and Wilson score interval of ``errors`` in ``n`` Bernoulli trials."""
    if n <= 0:
        return None, None, None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    phat = errors / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if errors == 0 else max(0.0, centre - half)
    high = 1.0 if errors == n else min(1.0, centre + half)
    return phat, low, high


def audit_error_rate(store: DeploymentStore, *, model_version: str | None = None, since: float | None = None,
                     until: float | None = None, level: float = 0.95) -> Estimate:
    """The production error rate from reviewed random audits (optionally of one model version or
    of predictions made in ``[since, until)``)."""
    audited = select(t.prediction_id).where(t.deployment == store.deployment, t.audit.is_(True))
    where = [r.deployment == store.deployment, r.prediction_id.in_(audited)]
    if model_version is not None:
        where.append(r.model_version == model_version)
    if since is not None:
        where.append(p.predicted_at >= since)
    if until is not None:
        where.append(p.predicted_at < until)
    query = (select(func.count(func.distinct(r.prediction_id)),
                    func.count(func.distinct(case((r.verdict != "confirm", r.prediction_id)))))
             .join(s.pd_predictions, (p.deployment == r.deployment) & (p.prediction_id == r.prediction_id)).where(*where))
    with store.engine.connect() as conn:
        n, errors = conn.execute(query).one()
    rate, low, high = wilson(int(errors), int(n), level)
    return Estimate(int(n), int(errors), rate, low, high, level)


def errors_fixed_per_hour(store: DeploymentStore) -> dict[str, Any]:
    """Reviews, errors found (corrected or out of scope), review hours (unpaid included), the
    planned cost (what the reviews were priced at) and cost per error fixed on it, and the
    back-pay booked on the review loop (``ledger adjust``), its own line as in every view."""
    with store.engine.connect() as conn:
        reviews, fixed = conn.execute(select(func.count(), func.coalesce(func.sum(case((r.verdict != "confirm", 1), else_=0)), 0))
                                      .where(r.deployment == store.deployment)).one()
    spent = store.review_spent()
    hours = spent["total_hours"]
    return {"reviews": int(reviews), "errors_fixed": int(fixed), "hours": hours, "active_hours": spent["active_hours"],
            "cost": spent["cost"] - spent["adjustments"], "back_pay": spent["adjustments"],
            "currency": store.ledger.currency(review_loop(store.deployment)),
            "per_hour": int(fixed) / hours if hours else None,
            "cost_per_error": ratio(spent["cost"] - spent["adjustments"], int(fixed))}  # exact (Decimal), to the micro-unit


def time_to_correction(store: DeploymentStore) -> dict[str, Any]:
    """Seconds from a wrong prediction to the review that corrected it: n, median, mean, p90."""
    query = (select(r.reviewed_at - p.predicted_at)
             .join(s.pd_predictions, (p.deployment == r.deployment) & (p.prediction_id == r.prediction_id))
             .where(r.deployment == store.deployment, r.verdict != "confirm"))
    with store.engine.connect() as conn:
        delays = np.asarray([float(d) for d in conn.execute(query).scalars()], dtype=float)
    if delays.size == 0:
        return {"n": 0, "median_s": None, "mean_s": None, "p90_s": None}
    return {"n": int(delays.size), "median_s": float(np.median(delays)), "mean_s": float(delays.mean()),
            "p90_s": float(np.quantile(delays, 0.9))}


def promotion_effects(store: DeploymentStore, level: float = 0.95) -> list[dict[str, Any]]:
    """Per promotion or rollback: audited error rate of the predictions served by the previous
    version and by the new one (production figures), and the gate's slice figures."""
    out = []
    for row in store.promotions():
        if row["action"] not in ("promote", "rollback") or row["previous"] is None:
            continue
        before = audit_error_rate(store, model_version=row["previous"], level=level)
        after = audit_error_rate(store, model_version=row["version"], level=level)
        out.append({"seq": row["seq"], "action": row["action"], "from": row["previous"], "to": row["version"],
                    "at": row["recorded_at"], "before": asdict(before), "after": asdict(after),
                    "gate": {"error_serving": row["error_current"], "error_candidate": row["error_candidate"],
                             "n_slice": row["n_slice"]}})
    return out


def triage_counts(store: DeploymentStore) -> list[dict[str, Any]]:
    """Per policy: predictions decided, selected for review, audits."""
    query = (select(t.policy, func.count(), func.sum(case((t.review.is_(True), 1), else_=0)),
                    func.sum(case((t.audit.is_(True), 1), else_=0)))
             .where(t.deployment == store.deployment).group_by(t.policy).order_by(t.policy))
    with store.engine.connect() as conn:
        return [{"policy": pol, "decided": int(n), "selected": int(sel or 0), "audits": int(aud or 0)}
                for pol, n, sel, aud in conn.execute(query)]


def summary(store: DeploymentStore, level: float = 0.95) -> dict[str, Any]:
    """Everything above for one deployment, JSON-ready."""
    return {"deployment": store.deployment, "serving": store.serving(),
            "error_rate": asdict(audit_error_rate(store, level=level)),
            "serving_error_rate": asdict(audit_error_rate(store, model_version=store.serving(), level=level))
            if store.serving() else None,
            "review": errors_fixed_per_hour(store), "time_to_correction": time_to_correction(store),
            "promotions": promotion_effects(store, level), "triage": triage_counts(store)}


def review_days(engine: Any, deployment: str | None = None) -> list[dict[str, Any]]:
    """Per UTC day of review (``day``: epoch seconds of its start), over one deployment or all:
    reviews, errors fixed, human hours (the answers' active and unpaid seconds; one-off
    qualification time is left out), audited reviews and the errors among them."""
    a = s.assignments.c
    audited = select(t.deployment, t.prediction_id).where(t.audit.is_(True)).distinct().subquery()
    day = func.floor(r.reviewed_at / 86400.0) * 86400.0
    seconds = func.coalesce(a.active_s, 0.0) + func.coalesce(a.search_s, 0.0) + func.coalesce(a.wait_s, 0.0) + \
        func.coalesce(a.returned_s, 0.0)
    is_audit = audited.c.prediction_id.is_not(None)
    query = (select(day.label("day"), func.count(), func.sum(case((r.verdict != "confirm", 1), else_=0)),
                    func.sum(seconds), func.sum(case((is_audit, 1), else_=0)),
                    func.sum(case((is_audit & (r.verdict != "confirm"), 1), else_=0)))
             .select_from(s.pd_reviews)
             .outerjoin(s.assignments, a.task_key == r.task_key)
             .outerjoin(audited, (audited.c.deployment == r.deployment) & (audited.c.prediction_id == r.prediction_id))
             .group_by(day).order_by(day))
    if deployment is not None:
        query = query.where(r.deployment == deployment)
    with engine.connect() as conn:
        return [{"day": float(d), "reviews": int(n), "errors_fixed": int(f or 0), "human_hours": float(sec or 0.0) / 3600,
                 "audited": int(au or 0), "audit_errors": int(ae or 0)} for d, n, f, sec, au, ae in conn.execute(query)]
