"""Which model version was serving when an annotation was made: the ledger round whose start
precedes the annotation's ``created_at``. Answers fetched late (a lost webhook, a restart, a
training run that reads the whole project) still count for the version people worked beside."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any

from clicloop.backends.labelstudio_format import epoch


class RoundClock:
    """Start times of a loop's rounds, to look up the round serving at a moment."""

    def __init__(self, rounds: Iterable[Mapping[str, Any]] = ()):
        self.starts: list[float] = []
        self.numbers: list[int] = []
        for r in sorted(rounds, key=lambda r: r["round_no"]):
            self.add(int(r["round_no"]), float(r["recorded_at"]))

    def add(self, round_no: int, started_at: float) -> None:
        """A round began at ``started_at`` (rounds are added in order; clocks never run back)."""
        if self.starts:
            started_at = max(started_at, self.starts[-1])
        self.starts.append(started_at)
        self.numbers.append(round_no)

    def round_at(self, created_at: Any, default: int) -> int:
        """The round serving at ``created_at`` (an ISO timestamp); ``default`` when it cannot be read.
        Before the first round began: the first round."""
        moment = epoch(created_at) if isinstance(created_at, str) else None
        if moment is None or not self.numbers:
            return default
        i = bisect.bisect_right(self.starts, moment) - 1
        return self.numbers[max(i, 0)]
