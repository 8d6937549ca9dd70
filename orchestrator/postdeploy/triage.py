"""Triage: decide, for each production prediction, whether people review it, and record why.

A policy is a spec, as in a config::

    {"all": [{"any": ["user-flagged", {"name": "low-confidence", "params": {"threshold": 0.4}},
                      {"name": "random-audit", "params": {"rate": 0.02}}]},
             {"name": "daily-budget", "params": {"hours": 2}}]}

Leaves are triage plugins (``clicloop_register_triage_policies``); ``all`` / ``any`` combine
them (AND / OR). A cap such as ``daily-budget`` inside an ``all`` limits what its siblings
selected. Each decision lands in ``pd_triage`` with every condition that fired.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clicloop.orchestrator.postdeploy.conditions import Outcome, TriageContext, triage_registry
from clicloop.orchestrator.postdeploy.errors import TriageConfigError
from clicloop.orchestrator.postdeploy.records import day_of, time_range
from clicloop.orchestrator.postdeploy.store import DeploymentStore

log = logging.getLogger("clicloop.postdeploy")


class AnyOf:
    """OR: fires when any child fires; priority is the largest fired child's."""

    def __init__(self, children: Sequence[Any]):
        if any(getattr(c, "cap", False) for c in children):
            raise TriageConfigError("a cap (daily-budget) limits an 'all': put it beside the conditions, not in an 'any'",
                                    field="triage")
        self.children = list(children)

    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        outs = [c.evaluate(rows, ctx) for c in self.children]
        mask = np.logical_or.reduce([o.mask for o in outs])
        prio = np.max([np.where(o.mask, o.priority, 0.0) for o in outs], axis=0)
        return Outcome(mask, prio, [sum((o.fired[i] for o in outs), []) for i in range(len(rows))])


class AllOf:
    """AND: fires when every condition fires; caps then limit the selection."""

    def __init__(self, children: Sequence[Any]):
        self.children = [c for c in children if not getattr(c, "cap", False)]
        self.caps = [c for c in children if getattr(c, "cap", False)]
        if not self.children:
            raise TriageConfigError("an 'all' needs at least one condition that is not a cap", field="triage")

    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        outs = [c.evaluate(rows, ctx) for c in self.children]
        mask = np.logical_and.reduce([o.mask for o in outs])
        prio = np.where(mask, np.max([o.priority for o in outs], axis=0), 0.0)
        out = Outcome(mask, prio, [sum((o.fired[i] for o in outs), []) for i in range(len(rows))])
        audit = np.array([any(f["condition"] == "random-audit" for f in fired) for fired in out.fired], dtype=bool)
        for cap in self.caps:
            out = cap.limit(rows, out, audit & out.mask, ctx)
        return out


def build_policy(spec: Any, registry: Any = None) -> Any:
    """A condition tree from a spec: a name, ``{"name", "params"}``, ``{"any": [...]}`` or ``{"all": [...]}``."""
    policy = _build(spec, registry or triage_registry())
    return AllOf([_Always(), policy]) if getattr(policy, "cap", False) else policy  # a budget alone caps "review everything"


def _build(spec: Any, registry: Any) -> Any:
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise TriageConfigError(f"a triage policy is a name or a mapping, not {spec!r}", field="triage")
    if set(spec) in ({"any"}, {"all"}):
        (op, children), = spec.items()
        if not isinstance(children, list) or not children:
            raise TriageConfigError(f"'{op}' needs a non-empty list of conditions", field="triage")
        built = [_build(c, registry) for c in children]
        return AnyOf(built) if op == "any" else AllOf(built)
    if "name" not in spec or set(spec) - {"name", "params"}:
        raise TriageConfigError(f"a condition is {{name, params}}, 'any' or 'all'; got keys {sorted(spec)}", field="triage")
    return registry.create("triage", spec["name"], dict(spec.get("params") or {}), field="triage")


class _Always:
    def evaluate(self, rows: Sequence[Mapping[str, Any]], ctx: TriageContext) -> Outcome:
        return Outcome(np.ones(len(rows), bool), np.zeros(len(rows)), [[] for _ in rows])


@dataclass(frozen=True)
class TriageSummary:
    decided: int
    selected: int
    audits: int


class Triage:
    """Runs a named policy over the predictions it has not decided on yet and records every decision."""

    def __init__(self, store: DeploymentStore, name: str, policy: Any, context: TriageContext | None = None):
        self.store, self.name, self.policy = store, name, policy
        self.context = context or TriageContext()
        self.context.store, self.context.policy = store, name

    def run(self, *, batch: int = 5000, until: float | None = None) -> TriageSummary:
        """Decide on every undecided prediction (predicted before ``until``, if given)."""
        stale = self.store.quarantine_times(*time_range())
        if stale:
            log.warning("quarantined %d prediction(s) whose time is out of range (recorded before ingest checked it)", stale)
        decided = selected = audits = 0
        while True:
            rows = self.store.untriaged(self.name, limit=batch)
            if until is not None:
                rows = [r for r in rows if r["predicted_at"] < until]
            if not rows:
                break
            decisions = self.decide(rows)
            self.store.record_decisions(decisions)
            decided += len(decisions)
            selected += sum(d["review"] for d in decisions)
            audits += sum(d["audit"] for d in decisions)
            if len(rows) < batch:
                break
        return TriageSummary(decided, selected, audits)

    def decide(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Decision rows for ``rows`` (not recorded)."""
        try:
            out = self.policy.evaluate(rows, self.context)
        except (ValueError, TypeError, KeyError) as e:
            raise TriageConfigError(f"triage policy {self.name!r} failed: {e}", field="triage") from e
        now = time.time()
        return [{
            "deployment": self.store.deployment, "prediction_id": r["prediction_id"], "policy": self.name,
            "review": bool(out.mask[i]), "audit": bool(out.mask[i]) and any(f["condition"] == "random-audit" for f in out.fired[i]),
            "priority": float(out.priority[i]), "fired_json": json.dumps(out.fired[i], default=float),
            "day": day_of(r["predicted_at"]), "model_version": r["model_version"], "recorded_at": now,
        } for i, r in enumerate(rows)]
