"""Which queued tasks of a Label Studio project clicloop may take back (``loop.mode: continuous``).

A task a person has started is never withdrawn. What Label Studio (1.23) tells an API client
about a task, and the rule built on it:

- **annotated or skipped**: ``total_annotations`` / ``cancelled_annotations`` of the task list;
- **a draft** (the labeling UI saves one while a person works, and on "postpone"): the task
  list's ``draft_exists`` (``fields=all``), which counts every user's drafts;
- **being shown** (a task lock, taken when the label stream hands a task to an annotator, 24 h
  by default): *not exposed* to anyone but the lock's holder (``unique_lock_id`` of
  ``/api/projects/<id>/next``). It is bounded instead. With the project's **Sequential
  sampling** the label stream hands out the first task, by id, that is not labeled and not
  locked by someone else, and each person holds one lock at most; so every locked task is among
  the first ``n`` not-labeled tasks of the project, ``n`` the number of people who may label.
  The first ``hold = 2 x annotators + 1`` of them are never withdrawn: the task each person holds,
  the next one each may be handed while clicloop reads the project and deletes (a person who
  answers in that window takes the first free task: with one spare only, two such answers put a
  task that is being withdrawn in someone's hands; seen in the real-server test), and one spare.
- **ids**: on SQLite, Label Studio numbers an import's tasks from the highest task id in the
  database + 1 (``tasks/serializers.py``), not from SQLite's own counter, so deleting the task of
  the highest id gives that id to the next task imported, and an annotation someone was still
  making for the deleted task would land on the new one with the old task's answer (a wrong label,
  recorded without a word). The project's task of the highest id is never withdrawn: every id
  clicloop deletes stays below one that exists, so none is given out again, and a late submit for
  a withdrawn task is refused (404) instead.

So a task is withdrawable when it has no annotation, no skip and no draft, is not among the
first ``hold`` not-labeled tasks of the project by id, and is not the project's last task by id.
With any other sampling (uniform, uncertainty) any task may be in someone's hands: nothing is
withdrawn. An annotator labeling from a sorted or filtered Data Manager tab gets tasks in that
tab's order, which the rule cannot see: turn withdrawal off (``params.withdraw_queued: false``)
for such a project.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("clicloop.labelstudio")

SEQUENTIAL = "Sequential sampling"
USERS_TTL_S = 60.0


def started(task: dict[str, Any]) -> bool:
    """Whether someone has visibly started the task: an annotation, a skip or a draft."""
    return bool(task.get("total_annotations") or task.get("cancelled_annotations") or task.get("draft_exists")
                or task.get("annotations"))


def withdrawable(tasks: Iterable[dict[str, Any]], prefix: str, hold: int) -> dict[str, int]:
    """Clicloop key -> Label Studio task id of the tasks (keys starting with ``prefix``) nobody can
    have started, by the rule above; ``tasks``: every task of the project (``fields=all``)."""
    tasks = list(tasks)
    last = max((int(t["id"]) for t in tasks), default=None)  # its id would be given out again (the module's rule)
    open_ = sorted((t for t in tasks if not t.get("is_labeled")), key=lambda t: int(t["id"]))
    out: dict[str, int] = {}
    for task in open_[max(hold, 0):]:
        key = (task.get("data") or {}).get("clicloop_key")
        if isinstance(key, str) and key.startswith(prefix) and not started(task) and int(task["id"]) != last:
            out[key] = int(task["id"])
    return out


class Withdrawal:
    """The continuous mode's side of :class:`~clicloop.backends.labelstudio.LabelStudioBackend`:
    ``can_withdraw``, ``queued``, ``withdraw`` and ``active_workers`` (mixed in; it uses the
    backend's ``client_``, ``project_id_``, ``prefix_``, ``task_ids_`` and the ``withdraw_queued`` and
    ``annotators`` parameters)."""

    client_: Any
    project_id_: int
    prefix_: str
    task_ids_: dict[str, int]
    withdraw_queued: bool
    annotators: int | None

    @property
    def can_withdraw(self) -> bool:
        """Whether the loop may ask :meth:`withdraw` (``params.withdraw_queued``, default true)."""
        return bool(self.withdraw_queued)

    def active_workers(self) -> int:
        """The people who may label the project: ``params.annotators``, else the organization's
        users (read again at most once a minute: the loop asks at every top-up)."""
        read_at, n = getattr(self, "users_read_", (-math.inf, 0))
        return self._people() if time.monotonic() - read_at >= USERS_TTL_S else n

    def _people(self) -> int:
        if self.annotators is not None:
            return int(self.annotators)
        n = max(1, len(self.client_.users()))
        self.users_read_ = (time.monotonic(), n)
        return n

    def queued(self) -> set[str]:
        """Keys of this loop's tasks that nobody can have started (see the module's rule)."""
        return set(self._withdrawable())

    def withdraw(self, keys: Iterable[str]) -> list[str]:
        """Delete from the project the tasks of ``keys`` that are still withdrawable (the project is
        read again first); a task someone started stays. The keys taken back."""
        free = self._withdrawable()
        taken = [k for k in dict.fromkeys(keys) if k in free]
        if taken:
            self.client_.delete_tasks(self.project_id_, [free[k] for k in taken])
            for k in taken:
                self.task_ids_.pop(k, None)
            self.withdrawn_.update(taken)
            log.info("Label Studio project %s: withdrew %d queued task(s)", self.project_id_, len(taken))
        return taken

    def _withdrawable(self) -> dict[str, int]:
        if not self.withdraw_queued:
            return {}
        sampling = self.client_.project(self.project_id_).get("sampling")
        if sampling != SEQUENTIAL:
            if not getattr(self, "warned_sampling_", False):
                self.warned_sampling_ = True
                log.warning("Label Studio project %s uses %r, not %r: any open task may be in someone's hands, "
                            "so none is withdrawn", self.project_id_, sampling, SEQUENTIAL)
            return {}
        hold = 2 * self._people() + 1  # read fresh: someone may just have joined
        return withdrawable(self.client_.iter_tasks(self.project_id_), self.prefix_, hold)

    @property
    def withdrawn_(self) -> set[str]:
        """The keys this backend took back since it was opened."""
        if not hasattr(self, "withdrawn_keys_"):
            self.withdrawn_keys_: set[str] = set()
        return self.withdrawn_keys_
