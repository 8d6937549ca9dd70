"""Prolific studies sized by the measured answer rate (``loop.mode: continuous``).

In rounds mode a batch is one study. In continuous mode the loop hands the backend a few tasks at
a time (its top-ups); the backend gathers them and publishes a study once it holds as many
tasks as one study should have. The rule, one function (:meth:`StudySizer.places`):

- **rate**: the answers whose submission completed in the last ``rate_window_s`` seconds,
  divided by that window (or by the time since the first study was published, when that is
  shorter); unknown before the first answer.
- **places** = ``ceil(rate x study_minutes x 60 / tasks_per_submission)``: a study fills in about
  ``study_minutes`` at the measured rate; ``first_places`` while the rate is unknown; always
  within ``[min_places, max_places]``.
- One study fills at a time: the next is published when no study of the loop has a free place
  left, with ``places`` places, or fewer when the loop has handed over fewer tasks (the lookahead
  bounds a study). Meanwhile the tasks the loop tops up gather for it. The loop's default
  lookahead (twice the backend's ``active_workers``) is two studies' worth of tasks: one
  filling, one gathering.

Each decision is recorded: in the study's ``metadata`` at Prolific (``sizing``) and in
:attr:`StudySizer.decisions`. Tasks still gathering belong to no study yet, so the loop may take
them back (``withdraw``) when a refit drops them from the ranking.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clicloop.backends.prolific_client import ProlificError
from clicloop.backends.prolific_client import batch_id as batch_id_of

OPEN_STATUSES = ("ACTIVE", "PUBLISHING", "SCHEDULED")  # a study whose places are, or will be, on offer


@dataclass
class Sizing:
    """One study's size and why: ``rule`` is ``rate`` or ``first`` (no rate measured yet);
    ``places`` is what the rule asked, ``published`` the places the study got."""

    at: float
    rule: str
    rate_per_hour: float | None
    answers_in_window: int
    window_s: float
    places: int
    published: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "rate_per_hour": self.rate_per_hour,
                "answers_in_window": self.answers_in_window, "window_s": round(self.window_s, 1), "places": self.places,
                "published": self.published}


@dataclass
class StudySizer:
    """Sizes the next study from the answers seen; ``clock`` gives the time (epoch seconds), so
    tests can run it on a fake one. Parameters as in :class:`~clicloop.backends.prolific.ProlificBackend`."""

    study_minutes: float = 15.0
    rate_window_s: float = 1800.0
    first_places: int = 10
    min_places: int = 1
    max_places: int = 100
    tasks_per_submission: int = 1
    clock: Callable[[], float] = time.time
    answered_: dict[str, float] = field(default_factory=dict)  # task key -> when its submission completed
    first_published_: float | None = None
    decisions: list[Sizing] = field(default_factory=list)

    def check(self) -> None:
        """Refuse a rule that cannot work, naming the parameter."""
        whole = {"first_places": self.first_places, "min_places": self.min_places, "max_places": self.max_places}
        for name, value in whole.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ProlificError(f"prolific: {name} must be a whole number of places (1 or more), not {value!r}")
        if self.min_places > self.max_places:
            raise ProlificError(f"prolific: min_places ({self.min_places}) is more than max_places ({self.max_places})")
        for name, value in {"study_minutes": self.study_minutes, "rate_window_s": self.rate_window_s}.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ProlificError(f"prolific: {name} must be a positive number, not {value!r}")

    def observe(self, key: str, completed_at: float | None) -> None:
        """An answer whose submission completed at ``completed_at`` (each task counts once)."""
        if completed_at is not None and math.isfinite(completed_at):
            self.answered_.setdefault(key, float(completed_at))

    def published(self, places: int) -> None:
        """A study went out with ``places`` places (the first one starts the rate's clock)."""
        if self.first_published_ is None:
            self.first_published_ = self.clock()
        if self.decisions:
            self.decisions[-1].published = places

    def rate(self) -> tuple[float | None, int, float]:
        """(answers per second, answers in the window, the window's length); None before any answer."""
        now = self.clock()
        since = self.first_published_ if self.first_published_ is not None else now
        window = min(self.rate_window_s, max(now - since, 0.0))
        n = sum(now - self.rate_window_s < t <= now for t in self.answered_.values())
        if not self.answered_ or window <= 0:
            return None, n, window
        return n / window, n, window

    def places(self) -> Sizing:
        """The places the next study should have (the module's rule), recorded."""
        rate, n, window = self.rate()
        if rate is None:
            rule, want = "first", self.first_places
        else:
            rule, want = "rate", math.ceil(rate * self.study_minutes * 60.0 / self.tasks_per_submission)
        sizing = Sizing(self.clock(), rule, None if rate is None else rate * 3600.0, n, window,
                        min(max(want, self.min_places), self.max_places))
        self.decisions.append(sizing)
        return sizing


BUSY = ("ACTIVE", "AWAITING REVIEW", "APPROVED", "PARTIALLY APPROVED", "REJECTED")  # a place taken (RETURNED, TIMED-OUT free it)


class RateSizedStudies:
    """The continuous mode's side of :class:`~clicloop.backends.prolific.ProlificBackend` (mixed
    in): tasks gather in ``pending_`` and go out as studies sized by :class:`StudySizer`."""

    sizer_: StudySizer
    pending_: dict[str, Any]
    studies_: dict[str, Any]
    busy_: dict[str, int]
    study_of_: dict[str, str]
    tasks_per_submission: int
    context_: Any
    _create: Callable[..., Any]
    _publish: Callable[[Any], None]

    @property
    def can_withdraw(self) -> bool:
        """Continuous mode only: tasks still gathering for a study can be taken back."""
        return getattr(self, "sizer_", None) is not None

    def queued(self) -> set[str]:
        """Keys of the tasks gathering for the next study (in no study yet)."""
        return set(getattr(self, "pending_", {}))

    def withdraw(self, keys: Any) -> list[str]:
        """Take back tasks still gathering; a task in a published study stays. The keys taken back."""
        taken = [k for k in dict.fromkeys(keys) if k in self.pending_]
        for k in taken:
            del self.pending_[k]
        return taken

    def active_workers(self) -> int:
        """The tasks of one study at the current rate (the loop keeps twice that open: one study
        filling, one gathering); ``first_places`` before continuous mode has measured a rate."""
        sizer = getattr(self, "sizer_", None)
        if sizer is None:
            return 1
        rate, _, _ = sizer.rate()
        want = sizer.first_places if rate is None else math.ceil(rate * sizer.study_minutes * 60.0 / sizer.tasks_per_submission)
        return min(max(want, sizer.min_places), sizer.max_places) * self.tasks_per_submission

    def _gather(self, tasks: Any) -> None:
        for task in tasks:
            if task.key not in self.study_of_:
                self.pending_.setdefault(task.key, task)
        for study_id in sorted({self.study_of_[t.key] for t in tasks if t.key in self.study_of_}):
            self._publish(self.studies_[study_id])  # a draft a crash left between create and publish (else nothing)
        self._flush()

    def _flush(self) -> None:
        """Publish the next study once no study of the loop has a free place (the module's rule)."""
        while self.pending_ and not self._free_place():
            sizing = self.sizer_.places()
            chunk = list(self.pending_.values())[:sizing.places * self.tasks_per_submission]
            places = -(-len(chunk) // self.tasks_per_submission)
            self.sizer_.published(places)
            self._publish_chunk(chunk, places, sizing)
            for task in chunk:
                self.pending_.pop(task.key, None)

    def _publish_chunk(self, tasks: list[Any], places: int, sizing: Sizing) -> None:
        """One study of ``places`` places for ``tasks`` (the one already at Prolific after a crash)."""
        batch_id = batch_id_of(self.context_.loop, sorted(tasks, key=lambda t: t.key))
        study = next((s for s in self.studies_.values() if s.batch_id == batch_id), None)
        self._publish(study or self._create(batch_id, tasks, places, sizing))

    def _free_place(self) -> bool:
        """Whether a published study of the loop still has a place nobody took (one Prolific is
        still publishing or has scheduled counts: its places are coming; it answered a publish with
        PUBLISHING, and every task added meanwhile got a study of its own)."""
        return any(s.status in OPEN_STATUSES and s.places - self.busy_.get(s.id, 0) > 0 for s in self.studies_.values())

    def _observe(self, answers: Any, submissions: Any, study: Any) -> None:
        """After a study's submissions were read: its taken places, and the answers' times."""
        self.busy_[study.id] = sum(str(s.get("status")) in BUSY for s in submissions)
        if getattr(self, "sizer_", None) is not None:
            for a in answers:
                self.sizer_.observe(a.task_key, a.submitted_at)
