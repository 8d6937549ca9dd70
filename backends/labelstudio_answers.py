"""What Label Studio's annotations of one task mean for the loop: the answer, corrections to it,
and other people's annotations (extra answers). A mixin of :class:`~clicloop.backends.labelstudio.
LabelStudioBackend`, which holds the state it reads and keeps (``task_ids_``, ``annotation_keys_``,
``reported_``) and the pay settings (``hourly_wage``, ``reward_per_task``, ``max_active_s``,
``currency``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clicloop.backends.labelstudio_format import annotation_label, changed, epoch, result_problem, stamp, user_id
from clicloop.orchestrator.crowd.plausibility import timed_pay
from clicloop.orchestrator.types import Answer


class Annotations:
    """Reads a Label Studio task's annotations into :class:`~clicloop.orchestrator.types.Answer` s."""

    task_ids_: dict[str, int]
    annotation_keys_: dict[int, tuple[str, int]]
    reported_: dict[str, int]
    hourly_wage: float | None
    reward_per_task: float | None
    max_active_s: float | None
    currency: str

    def _judge(self, key: str, ls_task: dict[str, Any], wanted: set[str],
               marks: dict[int, tuple[dict[str, Any], int, str]]) -> list[Answer]:
        """What one Label Studio task (with its annotations) means for the loop."""
        task_id = int(ls_task["id"])
        self.task_ids_.setdefault(key, task_id)
        meta = ls_task.get("meta") or {}
        annotations = ls_task.get("annotations") or []
        for a in annotations:
            self.annotation_keys_[int(a["id"])] = (key, task_id)
        current = min(annotations, key=lambda a: a["id"], default=None)
        reported = meta.get("clicloop_reported")
        if reported is not None:
            self.reported_[key] = reported
        if key in wanted:
            if current is None:
                return []
            if reported != current["id"]:
                marks[task_id] = (meta, int(current["id"]), key)
            return [self._answer(key, current, "created", stamp(current.get("created_at"))), *self._extras(key, annotations)]
        if reported is None:
            return []  # never reported: nothing to correct
        if current is None:
            return [self._deleted(key, reported)]
        if current["id"] != reported:
            marks[task_id] = (meta, int(current["id"]), key)
            return [self._correction(key, current, f"{current['id']}@{stamp(current.get('updated_at'))}"),
                    *self._extras(key, annotations)]
        fixed = [self._correction(key, current, stamp(current.get("updated_at")))] if changed(current) else []
        return [*fixed, *self._extras(key, annotations)]

    def _extras(self, key: str, annotations: Sequence[dict[str, Any]]) -> list[Answer]:
        """The task's annotations after its first by people who had not annotated it: each one
        another person's work (``event="extra"``); a person's second annotation of a task pays nothing."""
        people, extras = set(), []
        for a in sorted(annotations, key=lambda a: int(a["id"])):
            person = user_id(a.get("completed_by"))
            if people and person not in people:
                extras.append(self._answer(key, a, "extra", f"extra:{a['id']}"))
            people.add(person)
        return extras

    def _correction(self, key: str, annotation: dict[str, Any], version: str) -> Answer:
        if annotation_label(annotation) is None:  # replaced by a skip: the label is withdrawn
            return self._deleted(key, annotation["id"], version)
        return self._answer(key, annotation, "updated", version)

    def _deleted(self, key: str, annotation_id: Any, version: str | None = None) -> Answer:
        return Answer(
            task_key=key, worker="", label=None, active_s=0.0, reward=0.0, fee=0.0, currency=self.currency,
            external_id=str(annotation_id), event="deleted", version=version or f"deleted:{annotation_id}",
        )

    def _answer(self, key: str, annotation: dict[str, Any], event: str, version: str) -> Answer:
        pay = timed_pay(annotation.get("lead_time"), field="lead_time", hourly_wage=self.hourly_wage or 0.0,
                        per_answer=self.reward_per_task, max_active_s=self.max_active_s)
        return Answer(
            task_key=key, worker=f"labelstudio-user-{user_id(annotation.get('completed_by'))}", label=annotation_label(annotation),
            active_s=pay.active_s, reward=pay.reward, fee=0.0, currency=self.currency,
            problem=pay.problem or result_problem(annotation.get("result")),
            submitted_at=epoch(annotation.get("created_at")), external_id=str(annotation["id"]), event=event, version=version,
        )
