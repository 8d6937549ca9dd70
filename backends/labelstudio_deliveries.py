"""What the Label Studio crowd backend makes of its webhook deliveries: a mixin of
:class:`~clicloop.backends.labelstudio.LabelStudioBackend` (it reads and keeps the backend's
``receiver_``, ``client_``, ``task_ids_``, ``annotation_keys_``, ``reported_``, ``hooked_``,
``claimed_``, ``confirmed_``, ``metas_``, ``counts_``, ``prefix_`` and ``poll_soon_``).

A delivery only says where to look: each new annotation is read back through the API (its task,
once) before it is recorded or changes any state, so a forged delivery (anyone who read the
webhook URL in the project's settings) pays no one and moves nothing; an edit or a deletion of a
reported answer makes the backend re-read that one task, so corrections follow the polling rules.
"""

from __future__ import annotations

import logging
from typing import Any

from clicloop.backends.labelstudio_client import LabelStudioError
from clicloop.backends.labelstudio_format import stamp
from clicloop.orchestrator.types import Answer

log = logging.getLogger("clicloop.labelstudio")
READ_BACK_MAX = 20  # tasks read back one by one in a collect; more (a bulk import): one paginated poll


class Deliveries:
    """Webhook deliveries into answers (see the module docstring)."""

    receiver_: Any
    client_: Any
    task_ids_: dict[str, int]
    annotation_keys_: dict[int, tuple[str, int]]
    reported_: dict[str, int]
    hooked_: dict[str, dict[int, dict[str, Any]]]
    claimed_: dict[str, int]
    confirmed_: dict[int, dict[str, Any]]
    metas_: dict[int, dict[str, Any]]
    counts_: dict[str, int]
    prefix_: str
    poll_soon_: bool

    def _from_webhooks(self, wanted: set[str], marks: dict[int, tuple[dict[str, Any], int, str]]) -> list[Answer]:
        """Answers from the queued deliveries. A new annotation of a task not yet reported is
        read back through the API (:meth:`_confirmed`); anything touching a reported answer (an edit, a deletion) makes
        the backend re-read that one task, so corrections follow exactly the polling rules."""
        recheck: dict[int, str] = {}
        for delivery in self.receiver_.drain() if self.receiver_ is not None else []:
            if delivery.action == "ANNOTATIONS_DELETED":
                for a in delivery.annotations:
                    key, task_id = self.annotation_keys_.get(a["id"], (None, 0))
                    if key is not None:
                        self.hooked_.get(key, {}).pop(a["id"], None)
                        recheck[task_id] = key
                continue
            for a in delivery.annotations:
                task_id = int(a["task"]["id"] if isinstance(a["task"], dict) else a["task"])
                task = delivery.tasks.get(task_id) or {}
                key = (task.get("data") or {}).get("clicloop_key") or self._key_of(task_id)
                if key is None:
                    self.poll_soon_ = True  # no task data and a task we have not seen: ask the project
                if not isinstance(key, str) or not key.startswith(self.prefix_):
                    continue
                known = self.task_ids_.get(key)
                if known is not None and known != task_id:  # a delivery naming another task for a key we know
                    self.counts_["webhook_unconfirmed"] += 1
                    log.warning("Label Studio webhook: annotation %s names task %s for %s, which is task %s: ignored",
                                a["id"], task_id, key, known)
                    continue
                if key in self.reported_ and key not in wanted:
                    recheck[task_id] = key
                else:  # what the payload says is checked before anything is kept (:meth:`_confirmed`)
                    self.hooked_.setdefault(key, {})[int(a["id"])] = a
                    self.claimed_[key] = task_id
        answers: list[Answer] = []
        for task_id, key in recheck.items():
            try:
                ls_task = self.client_.task(task_id)
            except LabelStudioError as e:
                if e.status != 404:
                    raise
                ls_task = {"id": task_id, "annotations": [], "meta": {"clicloop_reported": self.reported_.get(key)}}
            answers += self._judge(key, ls_task, wanted, marks)
        reads = READ_BACK_MAX
        for key, annotations in list(self.hooked_.items()):
            if key not in wanted and key in self.reported_:
                for i in self.hooked_.pop(key):  # reported by a poll meanwhile
                    self.confirmed_.pop(i, None)
            elif key in wanted and annotations:
                if not annotations.keys() <= self.confirmed_.keys():
                    if reads == 0:  # a bulk import's deliveries: one paginated poll reads them all
                        self.poll_soon_ = True
                        del self.hooked_[key]
                        continue
                    reads -= 1
                annotations = self._confirmed(key, self.task_ids_.get(key, self.claimed_.get(key, 0)), annotations)
                if not annotations:
                    continue
                current = annotations[min(annotations)]
                task_id = self.task_ids_[key]
                if self.reported_.get(key) != current["id"]:
                    marks.setdefault(task_id, (self.metas_.get(task_id, {}), int(current["id"]), key))
                answers += [self._answer(key, current, "created", stamp(current.get("created_at"))),
                            *self._extras(key, list(annotations.values()))]
        return answers

    def _confirmed(self, key: str, task_id: int, hooked: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """The delivered annotations as Label Studio holds them: a webhook only says where to look.
        The task is read once through the API, and what is paid (label, person, lead time) comes
        from there; an annotation the task does not hold (forged by someone who read the webhook
        URL, or deleted since) is dropped and counted (``webhook_unconfirmed``). Once per annotation."""
        if hooked.keys() <= self.confirmed_.keys():
            return {i: self.confirmed_[i] for i in hooked}
        try:
            ls_task = self.client_.task(task_id)
        except LabelStudioError as e:
            if e.status != 404:
                raise
            ls_task = {}
        if (ls_task.get("data") or {}).get("clicloop_key") != key:
            ls_task = {}
        held = {int(a["id"]): a for a in ls_task.get("annotations") or []}
        confirmed = {i: held[i] for i in hooked if i in held}
        if len(confirmed) < len(hooked):
            self.counts_["webhook_unconfirmed"] += len(hooked) - len(confirmed)
            log.warning("Label Studio task %s: %d webhook annotation(s) the project does not hold (deleted since, or a "
                        "forged delivery): not recorded", task_id, len(hooked) - len(confirmed))
        self.confirmed_.update(confirmed)
        if confirmed:  # the task as Label Studio holds it: where the key's answers live, and its meta
            self.task_ids_.setdefault(key, task_id)
            self.metas_[task_id] = ls_task.get("meta") or {}
            for i in confirmed:
                self.annotation_keys_[i] = (key, task_id)
            self.hooked_[key] = confirmed
        else:
            del self.hooked_[key]
        return confirmed
