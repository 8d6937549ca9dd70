"""Review tasks: people see the input and the model's answer and confirm it, correct it, or mark it
out of scope. Tasks go through any backend (``Task.kind == "review"``, ``Task.prediction`` set)
and are recorded, with their answers, pay and time, under the ledger loop ``<deployment>:review``
so accounting splits review effort from labeling. Each answered review becomes a ``pd_reviews``
row (the verdict) and a label of the prediction in ``labels`` (its provenance: the review task).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clicloop.orchestrator.postdeploy.errors import ReviewError
from clicloop.orchestrator.postdeploy.faults import boundary
from clicloop.orchestrator.postdeploy.records import OUT_OF_SCOPE
from clicloop.orchestrator.postdeploy.store import DeploymentStore, review_loop
from clicloop.orchestrator.types import Answer, BackendContext, Consensus, Task

log = logging.getLogger("clicloop.postdeploy")
PURPOSE = ("Check what a deployed assistant understood: confirm its answer, correct it, or mark the request "
           "as something it was never meant to handle.")


@dataclass(frozen=True)
class ReviewSummary:
    batch: int
    tasks: int
    answered: int
    confirmed: int
    corrected: int
    out_of_scope: int


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
                 poll_s: float = 1.0, timeout_s: float | None = None, clock: Callable[[], float] = time.time):
        self.store, self.backend, self.backend_name, self.policy = store, backend, backend_name, policy
        self.labels = tuple(dict.fromkeys([*labels, OUT_OF_SCOPE]))
        self.purpose, self.seed, self.truth = purpose, seed, truth
        self.poll_s, self.timeout_s, self.clock = poll_s, timeout_s, clock
        self.loop = review_loop(store.deployment)
        self._opened = False

    def _open(self) -> None:
        if self._opened:
            return
        body = json.dumps({"kind": "post-deployment review", "deployment": self.store.deployment}, sort_keys=True)
        self.store.ledger.begin_loop(self.loop, _sha(body), body, self.seed)
        boundary("loop")
        truth = self.truth if getattr(self.backend, "reads_ground_truth", False) else None
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
        ledger = self.store.ledger
        rounds = ledger.rounds(self.loop)
        if rounds and rounds[-1]["status"] == "started":
            r = rounds[-1]["round_no"]
            rows = self.store.predictions(ids=[t["item_id"] for t in ledger.tasks(self.loop, r)], status=None)
        else:
            r = rounds[-1]["round_no"] + 1 if rounds else 0
            rows = self.store.to_review(self.policy)[:limit]
            if not rows:
                return ReviewSummary(r, 0, 0, 0, 0, 0)
            self._check_truth(rows)
            ledger.start_round(self.loop, r, self.store.serving() or "unknown", len(self.store.reviews()), "review", None)
            boundary("round")
        tasks = [self._task(r, row) for row in rows]
        ledger.record_tasks(tasks, self.backend_name)
        boundary("tasks")
        self.backend.dispatch(tasks)
        boundary("dispatch")
        ledger.set_task_status((t.key for t in tasks), "dispatched")
        boundary("dispatched")
        answered = self._collect(r, tasks, {row["prediction_id"]: row for row in rows})
        ledger.finish_round(self.loop, r, None)
        boundary("finished")
        counts = {v: sum(a == v for a in answered) for v in ("confirm", "correct", "out_of_scope")}
        return ReviewSummary(r, len(tasks), len(answered), counts["confirm"], counts["correct"], counts["out_of_scope"])

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
                    prediction=(row["predicted_label"], float(conf)))

    def _collect(self, r: int, tasks: Sequence[Task], rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
        ledger = self.store.ledger
        by_key = {t.key: t for t in tasks}
        pending = set(by_key) - ledger.answered(self.loop, r)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        verdicts: list[str] = []
        while pending:
            try:
                answers = [a for a in self.backend.collect([t for t in tasks if t.key in pending])
                           if a.event == "created" and a.task_key in pending]
            except (OSError, ValueError) as e:
                raise ReviewError(f"backend {self.backend_name!r} failed to return reviews: {e}") from e
            recorded = [(by_key[a.task_key], a, *self._check(a)) for a in answers]
            new = ledger.record_answers(self.loop, self.backend_name, recorded)
            boundary("answers")
            reviews, labels = [], []
            for i in new:
                task, answer, status, _ = recorded[i]
                pending.discard(task.key)
                if status != "submitted":
                    continue
                row = rows[task.item_id]
                v = verdict(row["predicted_label"], answer.label)  # type: ignore[arg-type]
                verdicts.append(v)
                reviews.append({"task_key": task.key, "deployment": self.store.deployment, "prediction_id": task.item_id,
                                "model_version": row["model_version"], "model_label": row["predicted_label"], "verdict": v,
                                "label": answer.label, "worker": ledger.pseudonym(self.backend_name, answer.worker),
                                "reviewed_at": answer.submitted_at or self.clock()})
                labels.append(Consensus(task.item_id, answer.label, 1.0, 1))  # type: ignore[arg-type]
            self.store.record_reviews(reviews)
            ledger.record_labels(self.loop, r, labels)
            pending -= {a.task_key for a in answers}
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    log.warning("review batch %d: %d task(s) unanswered after %ss; they expire", r, len(pending), self.timeout_s)
                    ledger.set_task_status(pending, "expired")
                    break
                time.sleep(self.poll_s)
        return verdicts

    def _check(self, answer: Answer) -> tuple[str, str | None]:
        times = (answer.active_s, answer.search_s, answer.wait_s, answer.returned_s, answer.reward, answer.fee)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in times):
            return "quarantined", f"invalid times or pay {times!r}"
        if answer.label is None:
            return "skipped", None
        if answer.label not in self.labels:
            return "quarantined", f"label {answer.label!r} is not in the review label set"
        return "submitted", None


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()

