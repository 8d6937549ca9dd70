"""Writes what Label Studio reports into the clicloop ledger: every annotation's lead_time as
active seconds (its annotator as a pseudonym), edits and deletions as corrections, and one
round per model version. Every write is idempotent, so a repeated webhook changes nothing.

``lead_time`` is set by the client, so it passes the shared plausibility rule
(:mod:`clicloop.orchestrator.crowd.plausibility`): a value that is not finite, negative or above
``max_active_s`` is recorded quarantined, at 0 s and unpaid, with the raw value in the reason."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import numpy as np

from clicloop.backends.labelstudio_format import annotation_label as answer_label
from clicloop.backends.labelstudio_format import result_problem, user_id
from clicloop.connectors.labelstudio.rounds import RoundClock
from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S, timed_pay
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.crowd.aggregate import MajorityVote
from clicloop.orchestrator.types import Answer, Consensus, Task, Vote

BACKEND = "labelstudio-ml"


class AnnotationConflict(ValueError):
    """An annotation id arrives under another task than the one it was recorded for (answered 409)."""


def _user(annotation: dict[str, Any]) -> str:
    return f"labelstudio-user-{user_id(annotation.get('completed_by'))}"


def _status(label: str | None, labels: tuple[str, ...], problem: str | None) -> tuple[str, str | None]:
    """Ledger status and reason: quarantined for an implausible time or an unknown label."""
    if problem:
        return "quarantined", problem
    if label is None:
        return "skipped", None
    if label not in labels:
        return "quarantined", f"label {label!r} is not in the project's label set"
    return "submitted", None


class Recorder:
    """The ledger side of one served Label Studio project (loop ``<prefix>.p<project id>``)."""

    def __init__(self, ledger_url: str, loop: str, project_id: int, purpose: str, labels: tuple[str, ...],
                 hourly_wage: float = 0.0, currency: str = "EUR", max_active_s: float = DEFAULT_MAX_ACTIVE_S,
                 worker_salt: str | None = None, cold_version: str | None = None):
        self.ledger_url = ledger_url
        self.loop = loop
        self.cold_version = cold_version
        self.project_id = project_id
        self.purpose = purpose
        self.labels = labels
        self.hourly_wage = hourly_wage
        self.currency = currency
        self.max_active_s = max_active_s
        self.worker_salt = worker_salt

    def open(self) -> Recorder:
        self.ledger_ = Ledger(self.ledger_url, salt=self.worker_salt).open()
        body = json.dumps({"labelstudio_project": self.project_id, "backend": BACKEND}, sort_keys=True)
        self.ledger_.begin_loop(self.loop, hashlib.sha256(body.encode()).hexdigest(), body, 0)
        self.lock_ = threading.Lock()
        rounds = self.ledger_.rounds(self.loop)
        self.round_ = rounds[-1]["round_no"] if rounds else 0
        if not rounds:
            self.ledger_.start_round(self.loop, 0, self.cold_version or f"{self.loop}-cold", 0, "accuracy", None)
        self.clock_ = RoundClock(self.ledger_.rounds(self.loop))
        return self

    def close(self) -> None:
        if hasattr(self, "ledger_"):
            self.ledger_.close()

    def new_round(self, model_version: str, n_labeled: int, metric: float | None = None) -> int:
        """A model version was trained: close the current round, open the next."""
        with self.lock_:
            self.ledger_.finish_round(self.loop, self.round_)
            self.round_ += 1
            self.ledger_.start_round(self.loop, self.round_, model_version, n_labeled, "accuracy", metric)
            self.clock_.add(self.round_, self.ledger_.rounds(self.loop)[-1]["recorded_at"])
            return self.round_

    def _task(self, ls_task_id: int, annotation_id: int, data: dict[str, Any] | None, round_no: int) -> Task:
        item = str((data or {}).get("clicloop_item") or f"ls-task-{ls_task_id}")
        key = f"{self.loop}/ls-task-{ls_task_id}/annotation-{annotation_id}"
        return Task(key, self.loop, round_no, item, int(annotation_id), self.purpose, self.labels)

    def created(self, ls_task_id: int, annotation: dict[str, Any], data: dict[str, Any] | None, from_name: str) -> bool:
        """Record one annotation; True if it was new (a repeat changes nothing). It counts for the
        round (model version) serving when it was created, however late it arrives."""
        label = answer_label(annotation, from_name)
        pay = timed_pay(annotation.get("lead_time"), field="lead_time", hourly_wage=self.hourly_wage,
                        max_active_s=self.max_active_s)
        with self.lock_:
            round_no = self.clock_.round_at(annotation.get("created_at"), self.round_)
            task = self._task(ls_task_id, int(annotation["id"]), data, round_no)
            found = self._recorded_key(str(annotation["id"]))
            if found is not None and found != task.key:
                raise AnnotationConflict(
                    f"annotation {annotation['id']} is recorded for another task ({found}), not Label Studio task "
                    f"{ls_task_id}: an annotation is one answer, paid once (a forged or misrouted webhook?)")
            problem = pay.problem or result_problem(annotation.get("result"))
            answer = Answer(
                task_key=task.key, worker=_user(annotation), label=label, active_s=pay.active_s,
                reward=pay.reward, fee=0.0, currency=self.currency, problem=problem,
                external_id=str(annotation["id"]), version=str(annotation.get("created_at") or ""),
            )
            status, reason = _status(label, self.labels, problem)
            self.ledger_.record_tasks([task], BACKEND)
            new = self.ledger_.record_answers(self.loop, BACKEND, [(task, answer, status, reason)])
            self.keys_[answer.external_id] = task.key
            if new and status == "submitted":
                self.ledger_.record_labels(self.loop, round_no, [Consensus(task.item_id, label, 1.0, 1)])
            return bool(new)

    def _recorded_key(self, external_id: str) -> str | None:
        """The task key an annotation id was recorded under: from memory (read once, then kept as
        answers are recorded: a full read of the project asks about every annotation, and the
        ledger has no index on it), else the ledger (another process may have recorded it)."""
        if getattr(self, "keys_", None) is None:
            from sqlalchemy import select

            from clicloop.orchestrator.ledger import schema as s

            a = s.assignments.c
            with self.ledger_.engine_.connect() as conn:
                self.keys_ = dict(conn.execute(select(a.external_id, a.task_key).where(a.loop == self.loop)).all())
        if external_id in self.keys_:
            return self.keys_[external_id]
        found = self.recorded(int(external_id))
        if found is not None:
            self.keys_[external_id] = found[0]
        return None if found is None else found[0]

    def recorded(self, annotation_id: int) -> tuple[str, str] | None:
        """(task key, item id) of the recorded answer for this annotation id, if any."""
        from sqlalchemy import select

        from clicloop.orchestrator.ledger import schema as s

        a = s.assignments.c
        with self.ledger_.engine_.connect() as conn:
            row = conn.execute(select(a.task_key, a.item_id).where(a.loop == self.loop, a.external_id == str(annotation_id))).first()
        return (row.task_key, row.item_id) if row else None

    def reconcile(self, annotations: list[dict[str, Any]], from_name: str, read_at: float) -> int:
        """What the project held when it was read (every annotation of a full read started at
        ``read_at``), against the ledger: an annotation whose answer differs from what the ledger
        holds for it was edited, a recorded one no longer there was deleted, while no webhook told
        (``serve`` was down, a delivery was lost). Each becomes a correction, once (they went
        unrecorded: stale labels, a deleted answer still a vote). Only answers the ledger held, with
        all their corrections, before the read started are compared: a webhook recorded during the
        read is newer than the read. The corrections recorded."""
        from sqlalchemy import select

        from clicloop.orchestrator.ledger import schema as s

        a, c = s.assignments.c, s.corrections.c
        with self.lock_, self.ledger_.engine_.connect() as conn:
            rows = conn.execute(select(a.external_id, a.task_key, a.label, a.recorded_at).where(a.loop == self.loop)).all()
            held = {r.external_id: r.label for r in rows if r.recorded_at < read_at}
            by_key = {r.task_key: r.external_id for r in rows}
            for task_key, event, label, at in conn.execute(  # the latest correction of each answer, as votes take it
                    select(c.task_key, c.event, c.label, c.recorded_at).where(c.loop == self.loop).order_by(c.key)):
                ext = by_key.get(task_key)
                if at >= read_at:
                    held.pop(ext, None)  # corrected during the read: the read is older, nothing to compare
                elif ext in held:
                    held[ext] = None if event == "deleted" else label
        present = {str(ann["id"]): ann for ann in annotations}
        gone = {ext for ext, label in held.items() if label is None}  # deleted (or a skip): nothing to correct
        n = 0
        for ext, ann in present.items():
            if ext in held and ext not in gone and not ann.get("was_cancelled") and answer_label(ann, from_name) != held[ext]:
                n += self.corrected(ann, from_name, "updated")
        for ext in held.keys() - present.keys() - gone:
            n += self.corrected({"id": int(ext)}, from_name, "deleted")
        return n

    def corrected(self, annotation: dict[str, Any], from_name: str, event: str) -> bool:
        """Record an edit (``updated``) or a deletion (``deleted``) of an annotation, once per version."""
        label = answer_label(annotation, from_name) if event == "updated" else None
        event = "deleted" if label is None else event
        version = str(annotation.get("updated_at") or "") if event == "updated" else f"deleted:{annotation['id']}"
        with self.lock_:
            found = self.recorded(int(annotation["id"]))
            if found is None:
                return False  # never recorded (made before clicloop was connected)
            key, item = found
            new = self.ledger_.record_corrections(self.loop, [(key, item, event, label, version)])
            if new:  # the item's label from its answers as corrected: another annotator's answer still counts
                consensus = MajorityVote().aggregate([Vote(v["item_id"], v["worker"], v["label"])
                                                      for v in self.ledger_.votes(self.loop, item_ids=[item])],
                                                     np.random.default_rng(0))
                self.ledger_.revise_labels(self.loop, self.round_, consensus, [] if consensus else [item])
            return bool(new)
