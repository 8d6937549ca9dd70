"""Pieces of continuous mode that rounds mode uses too (orchestrator/continuous.py): the commit
boundaries that crash tests make fatal, the waiting no answer carried when a loop stops, and
telling a backend that no more work is coming."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from clicloop.orchestrator.ledger import continuous as cl
from clicloop.orchestrator.postdeploy.faults import FAULT_ENV, FAULT_EXIT

if TYPE_CHECKING:
    from clicloop.orchestrator.loop import Loop

log = logging.getLogger("clicloop")
COUNT_ENV = "CLICLOOP_FAULT_COUNT"
BOUNDARIES = ("version", "withdrawn", "tasks", "dispatched", "answers", "aggregated", "waits")
_hits: dict[str, int] = {}


def fault(name: str) -> None:
    """Passed a commit boundary (one of :data:`BOUNDARIES`): die like a SIGKILL (``os._exit``) the
    ``CLICLOOP_FAULT_COUNT``-th time (default 1) when ``CLICLOOP_FAULT_AT`` names it."""
    if os.environ.get(FAULT_ENV) != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(os.environ.get(COUNT_ENV, "1")):
        os._exit(FAULT_EXIT)


def record_trailing_waits(loop: Loop, r: int) -> None:
    """When a loop stops (either mode): the waiting no answer carries, each worker's since their
    last answer, from a backend that measures it (``settle_waits``, the event crowd), recorded in
    the ledger as unpaid waiting of round ``r`` (``cont_waits``). Exactly once: the backend gives
    the same figures for the same key and the ledger ignores a row it has, so a loop killed here
    and resumed records them once."""
    settle = getattr(loop.backend_, "settle_waits", None)
    if not callable(settle):
        return
    waits = settle(key=f"{loop.name}/{r}")
    n = cl.record_waits(loop.ledger_, loop.name, loop.config.backend.name, r, waits)
    fault("waits")
    if n:
        log.debug("round %d: recorded the waiting after the last answers of %d worker(s)", r, n)


def no_more_tasks(loop: Loop) -> None:
    """Tell a backend that can hear it (``no_more_tasks``: the event crowd) that the loop will ask
    nothing more for now (its budget is fully asked), so people who finish need not wait; new
    tasks call them back."""
    tell = getattr(loop.backend_, "no_more_tasks", None)
    if callable(tell):
        tell()
