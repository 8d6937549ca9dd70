"""Fair-work and data-protection policies the loop applies before anything leaves it.

- Sensitive data: items flagged personal or sensitive (a data column, or a configurable
  detector over the text) only go to backends declared ``confidential``; never to an open crowd.
  The same policy (:class:`~clicloop.orchestrator.config.Sensitive`) screens production
  predictions that ``deploy review`` sends. Item ids that look personal (an e-mail, a phone number,
  or what the configured detectors and patterns match) reach an open crowd only as opaque ids
  (:class:`OpaqueIds`), in both the item id and the task key.
- Purpose: every task says what the work is for; a task without a purpose is never dispatched.
- Disturbing content: flagged items carry a content warning; workers may opt out without penalty
  (an opt-out is a paid, skipped answer), and backends that pick workers cap each worker's daily
  exposure (``BackendContext.exposure_cap_per_day``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np

from clicloop.orchestrator.config import ContentWarning, Sensitive
from clicloop.orchestrator.errors import ClicloopError
from clicloop.orchestrator.hookspecs import hookimpl
from clicloop.orchestrator.ledger.money import ZERO, exact
from clicloop.orchestrator.types import Answer, PolicyDecision, Task

DETECTORS = {
    "email": r"[\w.+-]+@[\w-]+\.[\w.-]+",
    "phone": r"(?<!\d)(?:\+?\d[\s.-]?){8,14}\d(?!\d)",
    "iban": r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}\s?[A-Z0-9]{1,4}\b",
    "card": r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)",
}

ID_DETECTORS = ("email", "phone")  # always applied to item ids, whatever the text's detectors


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
    prices: dict[str, Decimal] = {}
    known = {t.key for t in tasks}
    for decisions in hook.clicloop_task_policy(loop=loop, backend=backend, confidential=confidential, tasks=list(tasks)):
        for d in decisions or ():
            if not isinstance(d, PolicyDecision) or d.task_key not in known or not d.reason:
                raise PolicyError(f"a task policy returned {d!r}: expected PolicyDecision(task_key of a given task, "
                                  "'veto' or 'reprice', a reason)")
            if d.action == "veto":
                vetoed.setdefault(d.task_key, d.reason)
            elif not _valid_reward(d.reward):
                raise PolicyError(f"a task policy repriced {d.task_key} without a valid reward: {d!r}")
            else:  # money exact (a float reward read by its repr, to the micro-unit); two prices: the higher wins
                prices[d.task_key] = max(prices.get(d.task_key, ZERO), exact(d.reward))
    kept = [replace(t, reward=prices[t.key]) if t.key in prices else t for t in tasks if t.key not in vetoed]
    return kept, vetoed


def _valid_reward(reward: Any) -> bool:
    """A finite, non-negative amount (a Decimal, or a number from a plugin)."""
    return (reward is not None and not isinstance(reward, bool) and isinstance(reward, (int, float, Decimal))
            and math.isfinite(reward) and reward >= 0)


class OpaqueIds:
    """The copies of tasks that a backend receives. For a backend that is not ``confidential``, an
    item id that looks personal (:data:`ID_DETECTORS`, plus the config's detectors and patterns)
    is replaced, in the item id and the task key, by ``item-<keyed hash>`` (HMAC-SHA256 with the
    ledger's salt: the same id maps to the same opaque id on a resume, and nobody can test guesses
    of e-mail addresses against it); answers come back under the real task key. The ledger keeps
    the real ids; a confidential backend gets the tasks as they are."""

    def __init__(self, secret: str, config: Sensitive, confidential: bool):
        self.secret, self.confidential = secret, confidential
        names = dict.fromkeys([*ID_DETECTORS, *config.detectors])
        self.regex = re.compile("|".join(f"(?:{p})" for p in [*(DETECTORS[d] for d in names), *config.patterns]))
        self.real: dict[str, str] = {}  # an outgoing (opaque) task key -> the ledger's
        self.real_items: dict[str, str] = {}  # an opaque item id -> the real one

    def item(self, item_id: str) -> str:
        """The id a backend sees for ``item_id``."""
        if self.confidential or not self.regex.search(item_id):
            return item_id
        digest = hmac.new(self.secret.encode(), f"item\x00{item_id}".encode(), hashlib.sha256).hexdigest()[:24]
        return f"item-{digest}"

    def tasks(self, tasks: Sequence[Task]) -> list[Task]:
        """``tasks`` as the backend may see them."""
        out = []
        for task in tasks:
            opaque = self.item(task.item_id)
            if opaque != task.item_id:
                key = f"{task.loop}/{task.round_no}/{opaque}/{task.replica}"
                self.real[key], self.real_items[opaque] = task.key, task.item_id
                task = replace(task, key=key, item_id=opaque)
            out.append(task)
        return out

    def truth(self, truth: Mapping[str, str] | None) -> Mapping[str, str] | None:
        """Ground truth (for a simulated crowd) under the ids the backend sees: a live view, as
        the caller may add to ``truth`` later."""
        return None if truth is None or self.confidential else _Renamed(truth, self)

    def answers(self, answers: Sequence[Answer]) -> list[Answer]:
        """The backend's answers under the ledger's task keys."""
        return [replace(a, task_key=self.real[a.task_key]) if a.task_key in self.real else a for a in answers]


class _Renamed(Mapping[str, str]):
    """A mapping keyed by real item ids, seen under the ids :class:`OpaqueIds` gives a backend."""

    def __init__(self, data: Mapping[str, str], ids: OpaqueIds):
        self.data, self.ids = data, ids

    def __getitem__(self, item: str) -> str:
        return self.data[self.ids.real_items.get(item, item)]

    def __iter__(self) -> Iterator[str]:
        return (self.ids.item(item) for item in self.data)

    def __len__(self) -> int:
        return len(self.data)
