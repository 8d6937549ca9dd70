"""Fault injection at the commit boundaries of ``deploy review``, for crash tests.

With ``CLICLOOP_FAULT_AT=<boundary>`` in its environment, a process ends the moment it reaches
that boundary, with ``os._exit(9)``: like a SIGKILL, nothing is flushed, closed or rolled back,
and whatever was committed stays. Random kills rarely land between two particular commits; this
lands there every time (tests/adversarial/test_review_crash.py kills at each boundary in turn).
Unset, as it always is outside tests, :func:`boundary` does nothing.
"""

from __future__ import annotations

import os

FAULT_ENV = "CLICLOOP_FAULT_AT"
FAULT_EXIT = 9
REVIEW_BOUNDARIES = ("loop", "round", "tasks", "dispatch", "dispatched", "answers", "finished")


def boundary(name: str) -> None:
    """Passed a commit boundary (one of :data:`REVIEW_BOUNDARIES`): die here if told to."""
    if os.environ.get(FAULT_ENV) == name:
        os._exit(FAULT_EXIT)
