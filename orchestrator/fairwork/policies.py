"""Fair-work and data-protection policies the loop applies before anything leaves it.

- Sensitive data: items flagged personal or sensitive (a data column, or a configurable
  detector over the text) only go to backends declared ``confidential``; never to an open crowd.
- Purpose: every task says what the work is for; a task without a purpose is never dispatched.
- Disturbing content: flagged items carry a content warning; workers may opt out without penalty
  (an opt-out is a paid, skipped answer), and backends that pick workers cap each worker's daily
  exposure (``BackendContext.exposure_cap_per_day``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from clicloop.orchestrator.config import ContentWarning, Sensitive
from clicloop.orchestrator.errors import ClicloopError
from clicloop.orchestrator.hookspecs import hookimpl
from clicloop.orchestrator.types import PolicyDecision, Task

DETECTORS = {
    "email": r"[\w.+-]+@[\w-]+\.[\w.-]+",
    "phone": r"(?<!\d)(?:\+?\d[\s.-]?){8,14}\d(?!\d)",
    "iban": r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}\s?[A-Z0-9]{1,4}\b",
    "card": r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)",
}


class PolicyError(ClicloopError):
    """A task would break a policy (sensitive data to an open crowd, no purpose statement)."""


def sensitive_mask(texts: Sequence[object] | None, flags: np.ndarray | None, config: Sensitive, n: int) -> np.ndarray:
    """True for items that must stay with confidential backends: flagged in the data, or caught
    by a detector or pattern in their text."""
    return flag_mask(texts, flags, [DETECTORS[d] for d in config.detectors] + list(config.patterns), n)


def warning_mask(texts: Sequence[object] | None, flags: np.ndarray | None, config: ContentWarning | None, n: int) -> np.ndarray:
    """True for items that carry a content warning: flagged in the data or matched by a pattern."""
    if config is None:
        return np.zeros(n, dtype=bool)
    return flag_mask(texts, flags, list(config.patterns), n)


def flag_mask(texts: Sequence[object] | None, flags: np.ndarray | None, patterns: Sequence[str], n: int) -> np.ndarray:
    """A data column's flags, or'ed with any of ``patterns`` found in the item's text."""
    mask = np.zeros(n, dtype=bool) if flags is None else flags.astype(bool).copy()
    if patterns and texts is not None:
        regex = re.compile("|".join(f"(?:{p})" for p in patterns))
        mask |= np.fromiter((isinstance(t, str) and regex.search(t) is not None for t in texts), dtype=bool, count=n)
    return mask


def check_dispatch(tasks: Sequence[Task], backend_name: str, confidential: bool) -> None:
    """The last check before tasks leave the loop (a resumed round's tasks included): raises
    rather than leak or mislead."""
    for task in tasks:
        breach = _breach(task, backend_name, confidential)
        if breach is not None:
            raise PolicyError(f"task {task.key}: {breach}")


@hookimpl
def clicloop_task_policy(loop: Any, backend: str, confidential: bool, tasks: Sequence[Task]) -> list[PolicyDecision]:
    """Built-in policies, through the same hook as third-party ones: no purpose, no task; no
    sensitive item for a backend that is not confidential."""
    return [PolicyDecision(t.key, "veto", breach) for t in tasks if (breach := _breach(t, backend, confidential)) is not None]


def _breach(task: Task, backend: str, confidential: bool) -> str | None:
    """Which built-in policy ``task`` breaks on ``backend``, if any."""
    if not task.purpose or not task.purpose.strip():
        return "no purpose statement: every task must say what the work is for"
    if task.sensitive and not confidential:
        return (f"sensitive item and backend {backend!r} is not confidential; "
                "route sensitive items to an in-house (confidential) backend")
    return None


def apply_policies(hook: Any, loop: Any, backend: str, confidential: bool, tasks: Sequence[Task]) -> tuple[list[Task], dict[str, str]]:
    """Ask every policy about ``tasks``; returns the tasks to create (repriced where a policy
    said so) and the vetoed task keys with their reasons."""
    vetoed: dict[str, str] = {}
    prices: dict[str, float] = {}
    known = {t.key for t in tasks}
    for decisions in hook.clicloop_task_policy(loop=loop, backend=backend, confidential=confidential, tasks=list(tasks)):
        for d in decisions or ():
            if not isinstance(d, PolicyDecision) or d.task_key not in known or not d.reason:
                raise PolicyError(f"a task policy returned {d!r}: expected PolicyDecision(task_key of a given task, "
                                  "'veto' or 'reprice', a reason)")
            if d.action == "veto":
                vetoed.setdefault(d.task_key, d.reason)
            elif d.reward is None or not d.reward >= 0:
                raise PolicyError(f"a task policy repriced {d.task_key} without a valid reward: {d!r}")
            else:
                prices[d.task_key] = max(prices.get(d.task_key, 0.0), d.reward)  # two prices: the higher wins
    kept = [replace(t, reward=prices[t.key]) if t.key in prices else t for t in tasks if t.key not in vetoed]
    return kept, vetoed
