"""Review tasks: people see the input and the model's answer and confirm it, correct it, or mark it
out of scope. Tasks go through any backend (``Task.kind == "review"``, ``Task.prediction`` set)
and are recorded, with their answers, pay and time, under the ledger loop ``<deployment>:review``
so accounting splits review effort from labeling. Each answered review becomes a ``pd_reviews``
row (the verdict) and a label of the prediction in ``labels`` (its provenance: the review task),
committed in the transaction that records the answer and its pay: a crash keeps all or none.
Verdicts an older version lost to a crash are rebuilt from the answers at the next run.

Sensitive data: the loop's policy (:mod:`clicloop.orchestrator.fairwork.policies`) applies. A
prediction whose text a detector flags (by default an e-mail address or a phone number) is not
sent to a backend that is not confidential: it waits, selected and unreviewed, for a confidential
one; a prediction id that looks personal leaves only as an opaque id.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clicloop.orchestrator.config import Sensitive
from clicloop.orchestrator.crowd.backend_facts import record_facts
from clicloop.orchestrator.crowd.extra import record_extras
from clicloop.orchestrator.ledger.extra import KIND as EXTRA
from clicloop.orchestrator.fairwork.policies import OpaqueIds, check_dispatch, sensitive_mask
from clicloop.orchestrator.postdeploy.errors import ReviewError
from clicloop.orchestrator.postdeploy.faults import boundary
from clicloop.orchestrator.postdeploy.records import OUT_OF_SCOPE
from clicloop.orchestrator.postdeploy.store import DeploymentStore, review_loop
from clicloop.orchestrator.types import Answer, BackendContext, Task

log = logging.getLogger("clicloop.postdeploy")
PURPOSE = ("Check what a deployed assistant understood: confirm its answer, correct it, or mark the request "
           "as something it was never meant to handle.")
REVIEW_SENSITIVE = Sensitive(detectors=["email", "phone"])  # the default for reviews: production text is personal


@dataclass(frozen=True)
class ReviewSummary:
    batch: int
    tasks: int
    answered: int
    confirmed: int
    corrected: int
    out_of_scope: int
    held: int = 0  # selected predictions kept from this backend: sensitive text, and it is not confidential


def verdict(model_label: str, label: str) -> str:
    """``confirm`` (same label), ``out_of_scope`` or ``correct``."""
    if label == model_label:
        return "confirm"
    return "out_of_scope" if label == OUT_OF_SCOPE else "correct"


class Reviewer:
    """Sends the predictions a triage policy selected to ``backend`` and records the reviews.

    ``labels`` is the label set reviewers choose from (``out_of_scope`` is added). ``truth`` is
    given to backends that read ground truth (the simulated crowd) only. ``clock`` stamps a review
    that the backend did not time (simulations pass a simulated clock).
    """

    def __init__(self, store: DeploymentStore, backend: Any, backend_name: str, labels: Sequence[str], *,
                 policy: str = "default", purpose: str = PURPOSE, seed: int = 0, truth: Mapping[str, str] | None = None,
                 poll_s: float = 1.0, timeout_s: float | None = None, clock: Callable[[], float] = time.time,
                 sensitive: Sensitive = REVIEW_SENSITIVE):
        self.store, self.backend, self.backend_name, self.policy = store, backend, backend_name, policy
        self.labels = tuple(dict.fromkeys([*labels, OUT_OF_SCOPE]))
        self.purpose, self.seed, self.truth = purpose, seed, truth
        self.poll_s, self.timeout_s, self.clock = poll_s, timeout_s, clock
        self.sensitive = sensitive
        self.confidential = bool(getattr(backend, "confidential", False))
        self.ids = OpaqueIds(store.ledger.secret_key(), sensitive, self.confidential)
        self.loop = review_loop(store.deployment)
        self._opened = False

    def _open(self) -> None:
        if self._opened:
            return
        body = json.dumps({"kind": "post-deployment review", "deployment": self.store.deployment}, sort_keys=True)
        self.store.ledger.begin_loop(self.loop, _sha(body), body, self.seed)
        boundary("loop")
        truth = self.ids.truth(self.truth) if getattr(self.backend, "reads_ground_truth", False) else None
        self.backend.open(BackendContext(self.loop, self.labels, self.purpose, self.seed, truth))
        self._opened = True

    def close(self) -> None:
        if self._opened:
            self.backend.close()
            self._opened = False

    def run(self, limit: int | None = None) -> ReviewSummary:
        """Review up to ``limit`` selected predictions (audits first, then by priority); a batch
        left unanswered by a crash is collected first."""
        self._open()
        self._rebuild()
        ledger = self.store.ledger
        rounds = ledger.rounds(self.loop)
        resumed = bool(rounds) and rounds[-1]["status"] == "started"
        r = (rounds[-1]["round_no"] + (0 if resumed else 1)) if rounds else 0
        recorded = [t for t in ledger.tasks(self.loop, r) if t["kind"] != EXTRA] if resumed else []  # an extra is never sent
        selected, held = self._screen(self.store.to_review(self.policy))
        if recorded:  # the batch a crash left open: the same tasks again
            rows = self.store.predictions(ids=[t["item_id"] for t in recorded], status=None)
        else:
            rows = selected[:limit]
            if not rows:
                if resumed:  # killed before its tasks were recorded: nothing was sent
                    ledger.finish_round(self.loop, r, None)
                return ReviewSummary(r, 0, 0, 0, 0, 0, held)
            self._check_truth(rows)
            if not resumed:
                ledger.start_round(self.loop, r, self.store.serving() or "unknown", len(self.store.reviews()), "review", None)
                boundary("round")
        tasks = [self._task(r, row) for row in rows]
        check_dispatch(tasks, self.backend_name, self.confidential)
        ledger.record_tasks(tasks, self.backend_name)
        boundary("tasks")
        outgoing = self.ids.tasks(tasks)
        self.backend.dispatch(outgoing)
        boundary("dispatch")
        ledger.set_task_status((t.key for t in tasks), "dispatched")
        boundary("dispatched")
        self._collect(r, tasks, outgoing, {row["prediction_id"]: row for row in rows})
        ledger.finish_round(self.loop, r, None)
        boundary("finished")
        counts = self.store.verdict_counts(r)
        return ReviewSummary(r, len(tasks), sum(counts.values()), counts.get("confirm", 0), counts.get("correct", 0),
                             counts.get("out_of_scope", 0), held)

    def _rebuild(self) -> None:
        """Verdicts and labels of answers recorded without them (a crash between two commits of a
        version that wrote them apart), derived from the ledger; idempotent."""
        missing = self.store.unjudged()
        if not missing:
            return
        self.store.record_verdicts([(m["round_no"], self._verdict_row(
            m["task_key"], m["item_id"], m["model_version"], m["predicted_label"], m["label"], m["worker"],
            m["submitted_at"] or m["recorded_at"])) for m in missing])
        log.warning("rebuilt %d verdict(s) and %d label(s) of answered review tasks that a crash had left without them",
                    sum(bool(m["no_verdict"]) for m in missing), sum(bool(m["no_label"]) for m in missing))

    def _screen(self, rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """The rows this backend may see, and how many it may not: sensitive text stays with
        confidential backends (the rows stay selected, for one)."""
        flags = self._sensitive(rows)
        if self.confidential or not flags.any():
            return list(rows), 0
        log.warning("%d selected prediction(s) hold sensitive text (review.sensitive); backend %r is not confidential, "
                    "so they wait for a confidential one", int(flags.sum()), self.backend_name)
        return [row for row, flagged in zip(rows, flags) if not flagged], int(flags.sum())

    def _sensitive(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        return sensitive_mask([row["text"] for row in rows], None, self.sensitive, len(rows))

    def _check_truth(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """A backend that answers from ground truth needs a label, within the review label set,
        for every prediction it reviews: say which are missing before any task is sent."""
        if not getattr(self.backend, "reads_ground_truth", False):
            return
        truth = self.truth or {}
        missing = [r["prediction_id"] for r in rows if r["prediction_id"] not in truth]
        if missing:
            raise ReviewError(f"backend {self.backend_name!r} answers from ground truth, which has no label for "
                              f"{len(missing)} prediction(s), e.g. {missing[:3]}; add them to the truth file (--truth)")
        outside = sorted({truth[r["prediction_id"]] for r in rows} - set(self.labels))
        if outside:
            raise ReviewError(f"true label(s) {outside[:5]} are not among the review labels; give reviewers the full "
                              "label set (--labels), new intents included")

    def _task(self, r: int, row: Mapping[str, Any]) -> Task:
        payload = row["text"] if row["text"] is not None else json.loads(row["features_json"])
        conf = row["confidence"] if row["confidence"] is not None else math.nan
        return Task(key=f"{self.loop}/{r}/{row['prediction_id']}/0", loop=self.loop, round_no=r, item_id=row["prediction_id"],
                    replica=0, purpose=self.purpose, labels=self.labels, payload=payload, kind="review",
                    prediction=(row["predicted_label"], float(conf)), sensitive=bool(self._sensitive([row])[0]))

    def _collect(self, r: int, tasks: Sequence[Task], outgoing: Sequence[Task], rows: Mapping[str, Mapping[str, Any]]) -> None:
        """Record answers as they come, each with its pay, verdict and label in one transaction."""
        ledger = self.store.ledger
        by_key = {t.key: t for t in tasks}
        pending = set(by_key) - ledger.answered(self.loop, r)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while pending:
            try:
                got = self.ids.answers(self.backend.collect([o for t, o in zip(tasks, outgoing) if t.key in pending]))
            except (OSError, ValueError) as e:
                raise ReviewError(f"backend {self.backend_name!r} failed to return reviews: {e}") from e
            record_extras(ledger, self.loop, self.backend_name, self.labels, got)  # a second review: paid, no verdict
            record_facts(ledger, self.loop, self.backend, self.backend_name, r, real=self.ids.real,
                         seen=self.__dict__.setdefault("facts_seen_", set()))  # returned work, the batches put out
            answers = [a for a in got if a.event == "created" and a.task_key in pending]
            recorded = [(by_key[a.task_key], a, *self._check(a)) for a in answers]

            def verdicts(conn: Any, new: list[int], recorded: list[tuple[Task, Answer, str, str | None]] = recorded) -> None:
                self.store.record_verdicts([(r, self._verdict_row(
                    task.key, task.item_id, rows[task.item_id]["model_version"], rows[task.item_id]["predicted_label"], answer.label,
                    ledger.pseudonym(self.backend_name, answer.worker), answer.submitted_at or self.clock()))
                    for task, answer, status, _ in (recorded[i] for i in new) if status == "submitted"], conn)

            ledger.record_answers(self.loop, self.backend_name, recorded, then=verdicts)
            boundary("answers")
            pending -= {a.task_key for a in answers}
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    log.warning("review batch %d: %d task(s) unanswered after %ss; they expire", r, len(pending), self.timeout_s)
                    ledger.set_task_status(pending, "expired")
                    break
                time.sleep(self.poll_s)

    def _verdict_row(self, task_key: str, prediction_id: str, model_version: str, model_label: str, label: str | None,
                     worker: str, reviewed_at: float) -> dict[str, Any]:
        """The ``pd_reviews`` row of one submitted review (``worker`` is the pseudonym)."""
        return {"task_key": task_key, "deployment": self.store.deployment, "prediction_id": prediction_id,
                "model_version": model_version, "model_label": model_label, "verdict": verdict(model_label, str(label)),
                "label": label, "worker": worker, "reviewed_at": reviewed_at}

    def _check(self, answer: Answer) -> tuple[str, str | None]:
        times = (answer.active_s, answer.search_s, answer.wait_s, answer.returned_s, answer.reward, answer.fee)
        if not all(isinstance(v, (int, float, Decimal)) and math.isfinite(v) and v >= 0 for v in times):
            return "quarantined", f"invalid times or pay {times!r}"
        if answer.label is None:
            return "skipped", None
        if answer.label not in self.labels:
            return "quarantined", f"label {answer.label!r} is not in the review label set"
        return "submitted", None


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()

