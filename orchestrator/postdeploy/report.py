"""The post-deployment report: :func:`clicloop.orchestrator.postdeploy.metrics.summary` plus ingest counts,
as plain lines for ``clicloop deploy status`` and as Markdown for ``clicloop deploy report``."""

from __future__ import annotations

from typing import Any

from clicloop.orchestrator.postdeploy.store import DeploymentStore


def build(store: DeploymentStore, level: float = 0.95) -> dict[str, Any]:
    """Everything the report shows, JSON-ready."""
    from clicloop.orchestrator.postdeploy.ingest import Ingestor
    from clicloop.orchestrator.postdeploy.metrics import summary

    return {**summary(store, level), "ingest": Ingestor(store).counts()}


def _rate(e: dict[str, Any] | None) -> str:
    if not e or not e["n"]:
        return "no audit reviewed yet"
    return f"{e['rate']:.3f} [{e['low']:.3f}, {e['high']:.3f}] ({e['errors']} errors in {e['n']} audits)"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def lines(data: dict[str, Any]) -> list[str]:
    """The report as bullet lines (no heading)."""
    ing, rv, ttc = data["ingest"], data["review"], data["time_to_correction"]
    level = int(round(100 * data["error_rate"]["level"]))
    cur = rv.get("currency") or ""
    out = [
        f"- Serving: {data['serving'] or '(nothing deployed)'}",
        f"- Ingested: {ing['accepted']} accepted, {ing['quarantined']} quarantined (unknown version or label), "
        f"{ing['rejected']} rejected (malformed)",
        f"- Production error rate from random audits ({level}% Wilson interval): {_rate(data['error_rate'])}",
        f"- ... of the serving version's traffic: {_rate(data['serving_error_rate'])}",
        f"- Review: {rv['reviews']} reviews found {rv['errors_fixed']} errors in {rv['hours']:.2f} human hours "
        f"({rv['active_hours']:.2f} h on tasks), cost {rv['cost']:.2f} {cur}".rstrip()
        + (f" (planned; back-pay {rv['back_pay']:.2f} {cur} booked since)".replace("  ", " ") if rv.get("back_pay") else ""),
        f"- Errors fixed per human hour: {'-' if rv['per_hour'] is None else format(rv['per_hour'], '.1f')}; "
        f"cost per error fixed: {'-' if rv['cost_per_error'] is None else format(rv['cost_per_error'], '.2f')} {cur}".rstrip(),
        f"- Time from error to correction: median {_duration(ttc['median_s'])}, 90th percentile {_duration(ttc['p90_s'])} "
        f"({ttc['n']} corrections)",
    ]
    for t in data["triage"]:
        out.append(f"- Triage policy {t['policy']!r}: decided {t['decided']}, sent {t['selected']} to review "
                   f"({t['audits']} random audits)")
    for p in data["promotions"]:
        gate = p["gate"]
        on_slice = ("" if gate["error_candidate"] is None else
                    f"; on the audited slice {gate['error_serving']:.3f} -> {gate['error_candidate']:.3f} ({gate['n_slice']} audits)")
        out.append(f"- {p['action']} {p['from']} -> {p['to']}: audited error of their traffic "
                   f"{_rate(p['before'])} -> {_rate(p['after'])}{on_slice}")
    return out


def markdown(data: dict[str, Any]) -> str:
    """The report as a Markdown document."""
    return "\n".join([f"# Post-deployment report: {data['deployment']}", "", *lines(data)]) + "\n"
