"""What a view is (a title, key numbers, tables and plotly figures) and the context views share.

A view is a pure function ``Context -> View``: it reads the ledger through the context's
read-only engine and returns plain data; rendering (HTML, JSON) happens elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from clicloop.orchestrator.config import Stop, WageFloor
from clicloop.orchestrator.dashboard import queries
from clicloop.orchestrator.dashboard.floors import mark_floor, owed_sum
from clicloop.orchestrator.dashboard.source import Filters, LoopInfo, loop_infos
from clicloop.orchestrator.ledger.money import ZERO
from clicloop.orchestrator.reporting.report import money_per_point

# Okabe-Ito: distinguishable with every common colour-vision deficiency
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
BASELINE = "#595959"
FLOOR = "#D55E00"


@dataclass(frozen=True)
class Number:
    """A key number shown as text: ``key`` identifies it in the page (``data-key``)."""

    key: str
    label: str
    value: float | int | str | None
    text: str


@dataclass(frozen=True)
class Table:
    """A table readable without hovering; ``keys`` name the columns in the page (``data-col``)."""

    caption: str
    columns: list[str]
    keys: list[str]
    rows: list[list[Any]]
    texts: list[list[str]]
    note: str | None = None


@dataclass
class View:
    """One dashboard view: ``empty`` holds the message shown when the ledger has nothing for it."""

    name: str
    title: str
    summary: str
    numbers: list[Number] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)  # plotly Figure objects
    empty: str | None = None
    notes: list[str] = field(default_factory=list)


class Context:
    """One request's inputs: the read-only engine, the resolved filters, the wage floor, the
    forecast's target and the loops' stop rules (when config files were given).
    Shared query results are computed once per context."""

    def __init__(self, engine: Engine, filters: Filters, floor: WageFloor | None = None, target: float | None = None,
                 stops: Mapping[str, Stop] | None = None):
        self.engine = engine
        self.filters = filters
        self.floor = floor or WageFloor()
        self.target = target
        self.stops = dict(stops or {})  # per loop name, from config files: targets and budgets
        self.scope = queries.resolve(engine, filters)

    @cached_property
    def loops(self) -> list[LoopInfo]:
        """Loops in scope."""
        return [i for i in self.all_loops if self.scope.loops is None or i.name in self.scope.loops]

    @cached_property
    def all_loops(self) -> list[LoopInfo]:
        """Every loop of the ledger, in scope or not (colours stay stable under filters)."""
        return loop_infos(self.engine)

    @cached_property
    def review_loops(self) -> set[str]:
        """Post-deployment review loops (no learning curve; their labor counts in the people views)."""
        return {i.name for i in self.all_loops if i.review}

    @cached_property
    def rounds(self) -> list[dict[str, Any]]:
        """Rounds of the labeling loops in scope (review loops have no metric to plot)."""
        return [r for r in queries.rounds(self.engine, self.scope) if r["loop"] not in self.review_loops]

    @cached_property
    def effort(self) -> dict[tuple[str, int], dict[str, float]]:
        return queries.effort_by_round(self.engine, self.scope)

    @cached_property
    def currency(self) -> str:
        found = queries.currencies(self.engine, self.scope)
        return "/".join(found) if found else self.floor.currency

    @cached_property
    def pay_currencies(self) -> dict[tuple[str, str], str]:
        """``(loop, backend) -> currency`` of its payments (``fairwork.currency.pay_currencies``)."""
        from clicloop.orchestrator.fairwork.currency import pay_currencies

        return pay_currencies(self.engine)

    def loop_currency(self, loop: str) -> str | None:
        """The currency a loop pays in (its first backend's), None before any payment."""
        return next((cur for (lp, _), cur in sorted(self.pay_currencies.items()) if lp == loop), None)

    def currency_of(self, loop: str) -> str:
        """The currency a loop's money is shown in: its pay's, the floor's before any payment."""
        return self.loop_currency(loop) or self.floor.currency

    def money_columns(self, spec: list[tuple[str, str, int | None]]) -> list[tuple[str, str, int | None]]:
        """Table columns whose headings name the currency (``{cur}``): the one currency in scope;
        with several, headings without it and a ``currency`` column after the loop, each row naming
        its own (a column read "income EUR/GBP" over rows in one or the other)."""
        if "/" not in self.currency:
            return [(k, h.format(cur=self.currency), d) for k, h, d in spec]
        out = [(k, h.replace(" {cur}", "").replace("{cur}", ""), d) for k, h, d in spec]
        at = next((i + 1 for i, (k, _, _) in enumerate(out) if k == "loop"), 0)
        return out[:at] + [("currency", "currency", None)] + out[at:]

    @cached_property
    def not_compared(self) -> list[str]:
        """The loops and backends in scope whose floor is in another currency than their pay."""
        from clicloop.orchestrator.fairwork.currency import not_compared

        names = {i.name for i in self.loops}
        return not_compared(self.floor, {k: v for k, v in self.pay_currencies.items() if k[0] in names})

    @cached_property
    def pay_unknown(self) -> set[str]:
        """Loops in scope with answers and not one payment (the report's rule: no cost, no wage)."""
        from clicloop.orchestrator.ledger.accounting import pay_unknown

        return {i.name for i in self.loops if pay_unknown(self.engine, i.name)}

    @cached_property
    def paid_later(self) -> dict[tuple[str, str, str], Any]:
        """Under a model-version filter: back-pay booked after the version's rounds, per loop,
        backend and worker; it pays that work's debt first, as the version's labor card counts it."""
        from clicloop.orchestrator.reporting.laborcard import paid_since

        before = self.scope.before_round
        if before is None:
            return {}
        return {(lp, b, w): amount for lp in self.scope.loops or () for (b, w), amount in paid_since(self.engine, lp, before).items()}

    @cached_property
    def workers(self) -> list[dict[str, Any]]:
        """Per loop, backend and worker in scope: the wage rows (``queries.wages``), read once per request."""
        return queries.wages(self.engine, self.scope, ("loop", "backend", "worker"))

    @cached_property
    def owed(self) -> dict[str, Any]:
        """Per loop in scope: what lifting each of its workers below the floor would still cost
        (``fairwork.wages.owed_amount`` per worker, summed); None where pay is unknown."""
        workers = [dict(w) for w in self.workers]
        for row in workers:
            mark_floor(self, row, self.pay_unknown)
        return {lp: owed_sum(workers, {"loop": lp, "backend": ""}, self.pay_unknown) for lp in {w["loop"] for w in workers}}

    @cached_property
    def curves(self) -> dict[str, list[dict[str, Any]]]:
        """Per loop, per round: the model's labels and metric, what was spent BEFORE it (``hours``,
        ``cost``: the work its labels came from), what the round bought after it (``bought_*``),
        and the gain over the previous round with hours and cost per point (as the report). Money is
        exact and planned (rewards, bonuses, fees); back-pay booked in a round is ``adjustment``."""
        out: dict[str, list[dict[str, Any]]] = {}
        empty = {"answers": 0, "income": ZERO, "adjustment": ZERO, "fee": ZERO, "active_s": 0.0, "unpaid_s": 0.0}
        for r in self.rounds:
            rows = out.setdefault(r["loop"], [])
            e = self.effort.get((r["loop"], r["round_no"]), empty)
            prev = rows[-1] if rows else None
            hours = prev["hours"] + prev["bought_hours"] if prev else 0.0
            cost = prev["cost"] + prev["bought_cost"] if prev else ZERO
            prev_metric = next((x["metric"] for x in reversed(rows) if x["metric"] is not None), None)
            gain = None if prev_metric is None or r["metric"] is None else r["metric"] - prev_metric
            bh, bc = (prev["bought_hours"], prev["bought_cost"]) if prev else (0.0, ZERO)
            rows.append({
                "loop": r["loop"], "round_no": r["round_no"], "model_version": r["model_version"], "n_labeled": r["n_labeled"],
                "metric_name": r["metric_name"], "metric": r["metric"], "recorded_at": r["recorded_at"], "hours": hours, "cost": cost,
                "answers": e["answers"], "bought_hours": (e["active_s"] + e["unpaid_s"]) / 3600, "bought_cost": e["income"] + e["fee"],
                "adjustment": e["adjustment"], "total_hours": (e["active_s"] + e["unpaid_s"]) / 3600,
                "gain": gain, "hours_per_point": per_point(bh, gain), "cost_per_point": money_per_point(bc, gain),
                "stop_reason": r["stop_reason"], "n_eval": r.get("n_eval"),
            })
        return out

    def color(self, loop: str) -> str:
        """A stable colour per loop (grey for a random baseline)."""
        infos = self.all_loops
        info = next((i for i in infos if i.name == loop), None)
        if info is not None and info.baseline:
            return BASELINE
        others = [i.name for i in infos if not i.baseline and not i.review]
        return PALETTE[others.index(loop) % len(PALETTE)] if loop in others else PALETTE[-1]

    def is_baseline(self, loop: str) -> bool:
        return any(i.baseline for i in self.all_loops if i.name == loop)


def per_point(amount: float, gain: float | None) -> float | None:
    """Hours per accuracy point (0.01 of the metric), as the report computes it (money:
    ``reporting.report.money_per_point``)."""
    return amount / (100 * gain) if gain is not None and gain > 0 and amount > 0 else None


def fmt(v: float | int | None, digits: int = 2, *, unit: str = "", signed: bool = False) -> str:
    """A number as the page shows it: fixed digits, ``-`` for missing, ``∞`` for unbounded; a
    text (``pay unknown``) as it is. Money (Decimal) is rounded here, at the edge only."""
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    text = f"{v:+,.{digits}f}" if signed else f"{v:,.{digits}f}"
    return f"{text} {unit}".rstrip()


def table(caption: str, spec: list[tuple[str, str, int | None]], rows: list[dict[str, Any]], note: str | None = None) -> Table:
    """A table from dict rows; ``spec`` is ``(key, heading, digits)`` (digits None: as text)."""
    values = [[r.get(k) for k, _, _ in spec] for r in rows]
    texts = [[str(v) if d is None and v is not None else fmt(v, d or 0) if d is not None else "-" for v, (_, _, d) in zip(row, spec)]
             for row in values]
    return Table(caption, [h for _, h, _ in spec], [k for k, _, _ in spec], values, texts, note)


def layout(fig: Any, *, title: str, height: int = 380, **kw: Any) -> Any:
    """The shared look: white background, readable fonts, the legend at the bottom of the figure,
    below the axis title (the margin grows to hold it when it wraps in a narrow window)."""
    fig.update_layout(title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}}, height=height,
                      template="simple_white", colorway=list(PALETTE), margin={"l": 56, "r": 16, "t": 48, "b": 48},
                      legend={"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0, "x": 0}, font={"size": 13},
                      hoverlabel={"namelength": -1}, **kw)
    return fig
