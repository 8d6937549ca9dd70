"""The dashboard's views, by name, and :func:`build_views` (ledger + filters -> views)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import Engine

from clicloop.orchestrator.config import Stop, WageFloor
from clicloop.orchestrator.dashboard.base import Context, View
from clicloop.orchestrator.dashboard.postdeploy import post_deployment
from clicloop.orchestrator.dashboard.source import Filters
from clicloop.orchestrator.dashboard.views_cards import labor_cards
from clicloop.orchestrator.dashboard.views_continuous import waiting_staleness
from clicloop.orchestrator.dashboard.views_cost import forecast_view, learning, marginal
from clicloop.orchestrator.dashboard.views_people import rejections, unpaid, wages
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.reporting.forecast import check_target

VIEWS: dict[str, Callable[[Context], View]] = {
    "learning": learning,
    "forecast": forecast_view,
    "marginal": marginal,
    "wages": wages,
    "unpaid": unpaid,
    "staleness": waiting_staleness,
    "rejections": rejections,
    "postdeploy": post_deployment,
    "laborcards": labor_cards,
}


def build_views(engine: Engine, filters: Filters | None = None, names: Sequence[str] | None = None, *,
                floor: WageFloor | None = None, target: float | None = None, stops: Mapping[str, Stop] | None = None) -> list[View]:
    """The views ``names`` (default: all, in order) of the ledger behind ``engine``; ``stops``
    (loop name -> its config's stop rules) gives the forecast its targets and budgets."""
    check_target(target)
    names = list(names or VIEWS)
    unknown = [n for n in names if n not in VIEWS]
    if unknown:
        raise ConfigError(f"unknown view {unknown[0]!r}; views: {', '.join(VIEWS)}", field="view")
    ctx = Context(engine, filters or Filters(), floor, target, stops)
    return [VIEWS[n](ctx) for n in names]
