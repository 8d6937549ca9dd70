"""Fair-work and data-protection policies the loop applies before anything leaves it.

- Sensitive data: items flagged personal or sensitive (a data column, or a configurable
  detector over the text) only go to backends declared ``confidential``; never to an open crowd.
- Purpose: every task says what the work is for; a task without a purpose is never dispatched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from orchestrator.config import Sensitive
from orchestrator.errors import ClicloopError
from orchestrator.types import Task

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
    mask = np.zeros(n, dtype=bool) if flags is None else flags.astype(bool).copy()
    patterns = [DETECTORS[d] for d in config.detectors] + list(config.patterns)
    if patterns and texts is not None:
        regex = re.compile("|".join(f"(?:{p})" for p in patterns))
        mask |= np.fromiter((isinstance(t, str) and regex.search(t) is not None for t in texts), dtype=bool, count=n)
    return mask


def check_dispatch(tasks: Sequence[Task], backend_name: str, confidential: bool) -> None:
    """The last check before tasks leave the loop: raises rather than leak or mislead."""
    for task in tasks:
        if not task.purpose or not task.purpose.strip():
            raise PolicyError(f"task {task.key} has no purpose statement; every task must say what the work is for")
        if task.sensitive and not confidential:
            raise PolicyError(
                f"task {task.key} holds a sensitive item and backend {backend_name!r} is not confidential; "
                "route sensitive items to an in-house (confidential) backend"
            )
