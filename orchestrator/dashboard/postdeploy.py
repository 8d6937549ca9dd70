"""Post-deployment review: predictions reviewed, errors fixed per human hour, and the production
error rate estimated from random audits over time, with Wilson intervals.

Reads the post-deployment tables (``pd_*``, issue #5) and the review loops' work
(``<deployment>:review`` in the ledger's assignments, payments and workers); never writes. Every
figure is a grouped count or sum in SQL, by UTC day:

- reviews, errors fixed (verdict ``correct`` or ``out_of_scope``) and human hours by the day of
  the review; hours are the review answers' active and unpaid seconds, plus each reviewer's
  qualification time on the day of their first review (left out under a model-version filter,
  which cannot attribute it);
- the production error rate by the day of the *prediction*, from reviewed random audits only
  (every prediction had the same chance to be audited, so their error share is unbiased), as
  ``clicloop.orchestrator.postdeploy.metrics.audit_error_rate`` computes it.

Filters: ``loop`` ``<deployment>:review`` (labeling loops have no post-deployment data),
``model_version`` a deployed version (the predictions it made), ``backend`` (reviews done there),
dates (on review time, prediction time for audits, recording time for pay).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Integer, case, cast, func, inspect, select

from clicloop.orchestrator.dashboard.base import FLOOR, PALETTE, Context, Number, View, fmt, layout, table
from clicloop.orchestrator.dashboard.queries import Scope
from clicloop.orchestrator.dashboard.source import REVIEW_SUFFIX
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.money import ZERO, from_micros, ratio

NO_DATA = "No post-deployment data in this ledger: no production predictions have been reviewed yet."
NONE_IN_SCOPE = ("No post-deployment review in scope: post-deployment work is filtered by its loop '<deployment>:review' "
                 "or a deployed model version; widen the filters.")
LEVEL = 0.95
DAY = 86400


@dataclass
class Deployment:
    """One deployment's post-deployment figures in scope: per-day rows keyed by ISO day."""

    name: str
    reviews: dict[str, dict[str, float]] = field(default_factory=dict)  # day -> reviews, confirm, correct, out_of_scope, hours
    audits: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> audited, errors
    cost: Decimal = ZERO
    promotions: list[dict[str, Any]] = field(default_factory=list)

    def total(self, key: str) -> float:
        return sum(v.get(key, 0) for v in self.reviews.values())

    @property
    def errors_fixed(self) -> int:
        return int(self.total("correct") + self.total("out_of_scope"))

    @property
    def audited(self) -> int:
        return sum(v["audited"] for v in self.audits.values())

    @property
    def audit_errors(self) -> int:
        return sum(v["errors"] for v in self.audits.values())


def _day(engine: Engine, col: Any) -> Any:
    """Days since the epoch (UTC) of an epoch-seconds column, in SQL."""
    if engine.dialect.name == "sqlite":
        return cast(col / DAY, Integer)  # truncation: timestamps are positive
    return cast(func.floor(col / DAY), Integer)


def _iso(day: int) -> str:
    return dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + int(day)).isoformat()


def _time(col: Any, scope: Scope) -> list[Any]:
    out = []
    if scope.start is not None:
        out.append(col >= scope.start)
    if scope.end is not None:
        out.append(col < scope.end)
    return out


def read(engine: Engine, scope: Scope, review_loops: set[str]) -> list[Deployment] | None:
    """The deployments in scope with their per-day figures; ``None`` when the ledger has no
    post-deployment review at all, ``[]`` when none is in scope."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(s.pd_reviews.name) or conn.execute(select(s.pd_reviews.c.task_key).limit(1)).first() is None:
            return None
        loops = sorted(review_loops if scope.loops is None else review_loops & set(scope.loops))
        if not loops:
            return []
        deps = [lp[: -len(REVIEW_SUFFIX)] for lp in loops]
        rv, pr, tr, tk = s.pd_reviews.c, s.pd_predictions.c, s.pd_triage.c, s.tasks.c
        a, p, w = s.assignments.c, s.payments.c, s.workers.c
        version, backend = scope.filters.model_version, scope.filters.backend
        pd_where = [rv.deployment.in_(deps)]
        if version is not None:
            pd_where.append(rv.model_version == version)
        if backend is not None:
            pd_where.append(rv.task_key.in_(select(tk.key).where(tk.loop.in_(loops), tk.backend == backend)))

        rday = _day(engine, rv.reviewed_at)
        reviews = conn.execute(select(
            rv.deployment, rday, func.count(), *(func.sum(case((rv.verdict == v, 1), else_=0)) for v in ("confirm", "correct", "out_of_scope")))
            .where(*pd_where, *_time(rv.reviewed_at, scope)).group_by(rv.deployment, rday)).all()

        pday = _day(engine, pr.predicted_at)
        audited = (s.pd_reviews.join(s.pd_predictions, (pr.deployment == rv.deployment) & (pr.prediction_id == rv.prediction_id))
                   .join(s.pd_triage, (tr.deployment == rv.deployment) & (tr.prediction_id == rv.prediction_id) & tr.audit.is_(True)))
        audits = conn.execute(select(
            rv.deployment, pday, func.count(func.distinct(rv.prediction_id)),
            func.count(func.distinct(case((rv.verdict != "confirm", rv.prediction_id)))))
            .select_from(audited).where(*pd_where, *_time(pr.predicted_at, scope)).group_by(rv.deployment, pday)).all()

        # human time of the review answers, on the day of their review (else the day recorded)
        when = func.coalesce(rv.reviewed_at, a.recorded_at)
        work_where = [a.loop.in_(loops), *_time(when, scope)]
        if backend is not None:
            work_where.append(a.backend == backend)
        if version is not None:
            work_where.append(rv.model_version == version)
        wday = _day(engine, when)
        work = conn.execute(select(a.loop, wday, func.sum(a.active_s + a.search_s + a.wait_s + a.returned_s))
                            .select_from(s.assignments.outerjoin(s.pd_reviews, rv.task_key == a.task_key))
                            .where(*work_where).group_by(a.loop, wday)).all()
        quals: list[Any] = []
        if version is None:  # qualification time on the day of the reviewer's first review there
            first = (select(rv.deployment, rv.worker, func.min(rv.reviewed_at).label("at")).where(rv.deployment.in_(deps))
                     .group_by(rv.deployment, rv.worker).subquery())
            qwhen = func.coalesce(first.c.at, w.recorded_at)
            qday = _day(engine, qwhen)
            quals = conn.execute(select(w.loop, qday, func.sum(w.qualification_s))
                                 .select_from(s.workers.outerjoin(first, (first.c.worker == w.worker)
                                                                  & (first.c.deployment.concat(REVIEW_SUFFIX) == w.loop)))
                                 .where(w.loop.in_(loops), *([w.backend == backend] if backend else []), *_time(qwhen, scope))
                                 .group_by(w.loop, qday)).all()
        pay_where = [p.loop.in_(loops), p.kind != "adjustment",  # planned cost: back-pay is its own line
                     *_time(func.coalesce(rv.reviewed_at, p.recorded_at), scope)]
        if backend is not None:
            pay_where.append(p.backend == backend)
        if version is not None:
            pay_where.append(rv.model_version == version)
        cost = dict(conn.execute(select(p.loop, func.sum(p.amount_micros))
                                 .select_from(s.payments.outerjoin(s.pd_reviews, rv.task_key == p.task_key))
                                 .where(*pay_where).group_by(p.loop)).all())
        pm = s.pd_promotions.c
        promotions = [dict(x._mapping) for x in conn.execute(
            select(s.pd_promotions).where(pm.deployment.in_(deps), *_time(pm.recorded_at, scope)).order_by(pm.deployment, pm.seq))]
    if not reviews and not audits:
        return []
    out = {d: Deployment(d) for d in deps}
    zero = {"reviews": 0, "confirm": 0, "correct": 0, "out_of_scope": 0, "hours": 0.0}
    for dep, day, n, confirm, correct, oos in reviews:
        out[dep].reviews[_iso(day)] = {**zero, "reviews": int(n), "confirm": int(confirm or 0), "correct": int(correct or 0),
                                       "out_of_scope": int(oos or 0)}
    for lp, day, secs in [*work, *quals]:
        row = out[lp[: -len(REVIEW_SUFFIX)]].reviews.setdefault(_iso(day), dict(zero))
        row["hours"] += float(secs or 0) / 3600
    for dep, day, n, errors in audits:
        out[dep].audits[_iso(day)] = {"audited": int(n), "errors": int(errors or 0)}
    for lp, micros in cost.items():
        out[lp[: -len(REVIEW_SUFFIX)]].cost = from_micros(micros)
    for row in promotions:
        out[row["deployment"]].promotions.append(row)
    return [d for d in out.values() if d.reviews or d.audits]


def _rate(errors: int, n: int) -> tuple[float | None, float | None, float | None]:
    from clicloop.orchestrator.postdeploy.metrics import wilson  # the same estimate as `clicloop deploy status`

    return wilson(errors, n, LEVEL)


def _rate_text(errors: int, n: int) -> str:
    rate, low, high = _rate(errors, n)
    if rate is None or low is None or high is None:
        return "no audit yet"
    return f"{100 * rate:.1f}% ({100 * low:.1f}–{100 * high:.1f}%, n={n})"


def post_deployment(ctx: Context) -> View:
    import plotly.graph_objects as go

    view = View("postdeploy", "Post-deployment review", "Production predictions reviewed by people, errors fixed per human "
                "hour (review time, unpaid included), and the production error rate estimated from random audits, per day of "
                "the prediction, with 95% Wilson intervals.")
    deployments = read(ctx.engine, ctx.scope, ctx.review_loops)
    if not deployments:
        view.empty = NO_DATA if deployments is None else NONE_IN_SCOPE
        return view
    cur = ctx.currency
    rate_fig, hour_fig, verdict_fig = go.Figure(), go.Figure(), go.Figure()
    review_rows: list[dict[str, Any]] = []
    audit_rows: list[dict[str, Any]] = []
    for i, d in enumerate(deployments):
        color = PALETTE[i % len(PALETTE)]
        hours, fixed, n = sum(v["hours"] for v in d.reviews.values()), d.errors_fixed, int(d.total("reviews"))
        rate, low, high = _rate(d.audit_errors, d.audited)
        view.numbers += [
            Number(f"reviews:{d.name}", f"{d.name}: predictions reviewed", n, f"{n:,}"),
            Number(f"errors_fixed:{d.name}", f"{d.name}: errors fixed (corrected or out of scope)", fixed, f"{fixed:,}"),
            Number(f"review_hours:{d.name}", f"{d.name}: human hours of review", hours, fmt(hours, 2, unit="h")),
            Number(f"errors_per_hour:{d.name}", f"{d.name}: errors fixed per human hour", fixed / hours if hours else None,
                   fmt(fixed / hours, 2) if hours else "-"),
            Number(f"cost_per_error:{d.name}", f"{d.name}: cost per error fixed", ratio(d.cost, fixed),
                   fmt(ratio(d.cost, fixed), 2, unit=cur) if fixed else "-"),
            Number(f"error_rate:{d.name}", f"{d.name}: production error rate (random audits, 95%)", rate,
                   _rate_text(d.audit_errors, d.audited)),
        ]
        for day, v in sorted(d.reviews.items()):
            fixed_day = v["correct"] + v["out_of_scope"]
            review_rows.append({"deployment": d.name, "day": day, **v, "fixed": fixed_day,
                                "per_hour": fixed_day / v["hours"] if v["hours"] else None})
        pts = []
        for day, v in sorted(d.audits.items()):
            r, lo, hi = _rate(v["errors"], v["audited"])
            row = {"deployment": d.name, "day": day, "audited": v["audited"], "errors": v["errors"],
                   "rate": None if r is None else 100 * r, "low": None if lo is None else 100 * lo, "high": None if hi is None else 100 * hi}
            audit_rows.append(row)
            if r is not None:
                pts.append(row)
        rate_fig.add_trace(go.Scatter(
            x=[r["day"] for r in pts], y=[r["rate"] for r in pts], name=d.name, mode="lines+markers+text", line={"color": color},
            text=[f"{r['rate']:.1f}%" for r in pts], textposition="top right",
            error_y={"type": "data", "symmetric": False, "array": [r["high"] - r["rate"] for r in pts],
                     "arrayminus": [r["rate"] - r["low"] for r in pts], "color": color},
            customdata=[[r["low"], r["high"], r["audited"]] for r in pts],
            hovertemplate="%{x}: %{y:.1f}% (%{customdata[0]:.1f}–%{customdata[1]:.1f}%), %{customdata[2]} audits"
                          f"<extra>{d.name}</extra>"))
        if rate is not None and low is not None and high is not None and pts:  # in the legend: no label over the data
            rate_fig.add_trace(go.Scatter(x=[pts[0]["day"], pts[-1]["day"]], y=[100 * rate] * 2, mode="lines", hoverinfo="skip",
                                          line={"color": color, "dash": "dot", "width": 1},
                                          name=f"{d.name}, all audits: {100 * rate:.1f}% ({100 * low:.1f}–{100 * high:.1f}%)"))
        days = [r for r in review_rows if r["deployment"] == d.name]
        hour_fig.add_trace(go.Bar(x=[r["day"] for r in days], y=[r["per_hour"] for r in days], name=d.name, marker_color=color,
                                  text=[fmt(r["per_hour"], 1) for r in days], textposition="outside", cliponaxis=False))
        for (key, label), c in zip((("confirm", "confirmed"), ("correct", "corrected"), ("out_of_scope", "out of scope")),
                                   (PALETTE[2], FLOOR, PALETTE[3])):
            verdict_fig.add_trace(go.Bar(x=[r["day"] for r in days], y=[r[key] for r in days], marker_color=c,
                                         name=label + (f" ({d.name})" if len(deployments) > 1 else ""),
                                         text=[str(int(r[key])) for r in days], textposition="inside"))
    day_axis = {"tickformat": "%b %d", "automargin": True}
    view.figures.append(layout(rate_fig, title="Estimated production error rate (random audits, 95% Wilson interval)",
                               xaxis={**day_axis, "title": "day of the prediction (UTC)"}, yaxis_title="% of predictions wrong",
                               yaxis_rangemode="tozero"))
    view.figures.append(layout(hour_fig, title="Errors fixed per human hour of review", xaxis={**day_axis, "title": "day of the review (UTC)"},
                               yaxis_title="errors fixed per hour", barmode="group"))
    view.figures.append(layout(verdict_fig, title="Reviews by verdict", xaxis={**day_axis, "title": "day of the review (UTC)"},
                               yaxis_title="reviews", barmode="stack"))
    view.tables.append(table("Reviews per day (by review time)", [
        ("deployment", "deployment", None), ("day", "day", None), ("reviews", "reviewed", 0), ("confirm", "confirmed", 0),
        ("correct", "corrected", 0), ("out_of_scope", "out of scope", 0), ("hours", "human hours", 3),
        ("per_hour", "fixed per hour", 2)], review_rows,
        note=None if ctx.filters.model_version is None else "qualification time is left out under a model-version filter"))
    view.tables.append(table("Random audits per day (by prediction time): the production error rate", [
        ("deployment", "deployment", None), ("day", "day", None), ("audited", "audited", 0), ("errors", "wrong", 0),
        ("rate", "error rate %", 1), ("low", "low % (95%)", 1), ("high", "high % (95%)", 1)], audit_rows))
    promotions = [{**p, "at": dt.datetime.fromtimestamp(p["recorded_at"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M")}
                  for d in deployments for p in d.promotions]
    if promotions:
        view.tables.append(table("Deployments, promotions and rollbacks (errors on the audited slice)", [
            ("deployment", "deployment", None), ("at", "at (UTC)", None), ("action", "action", None), ("version", "version", None),
            ("previous", "previous", None), ("error_current", "error serving", 3), ("error_candidate", "error candidate", 3),
            ("n_slice", "slice", 0), ("reason", "reason", None)], promotions))
    return view
