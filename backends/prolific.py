"""Prolific: one study per batch of tasks, answers from the survey tool the study points to.

Where the answers come from. Prolific recruits and pays; it never sees the answers: a study sends
each participant to an ``external_study_url`` with ``PROLIFIC_PID``, ``STUDY_ID`` and
``SESSION_ID`` (the submission id) in the URL, the participant answers there, and comes back
with the study's completion code. So this backend talks to two services:

- Prolific's API (token auth) for studies, submissions, reviews, bonuses and messages;
- the requester's survey tool at ``survey_url``, through a small documented protocol:
  ``PUT {survey_url}/batches/{batch_id}`` with the batch manifest (purpose, instructions,
  labels, completion code, tasks with key and payload), participants sent to
  ``{survey_url}/batches/{batch_id}/take?PROLIFIC_PID=..&STUDY_ID=..&SESSION_ID=..``, and
  ``GET {survey_url}/batches/{batch_id}/responses`` returning ``{"results": [{"session_id",
  "participant_id", "task_key", "label", "active_s" (optional)}]}``.

An answer is reported once its submission is AWAITING REVIEW, APPROVED or PARTIALLY APPROVED
(statuses per https://docs.prolific.com/api-reference/submissions/submission-object), joined
with the survey responses by session id: participant id -> ``worker``, the survey's per-task
seconds plus an even share of the submission's time beyond them (or the submission's
completed_at - started_at split evenly over its tasks) -> ``active_s``, submission id -> ``external_id``. RETURNED and TIMED-OUT submissions carry no
label; their unpaid seconds are kept in :meth:`returned_effort` for the ledger. A task answered in
two submissions (the survey tool handed it to two people) is the first-completed one's; the
other answer comes back as ``event="extra"`` (Prolific pays that submission too).

Prolific endpoints used (https://docs.prolific.com/api-reference):
``POST /api/v1/studies/`` (create a draft), ``GET /api/v1/studies/``, ``GET /api/v1/studies/{id}/``,
``POST /api/v1/studies/{id}/transition/`` (``{"action": "PUBLISH"}``), ``GET /api/v1/submissions/
?study=``, ``POST /api/v1/submissions/{id}/transition/`` (APPROVE, or REJECT with
``rejection_category`` and a ``message`` of at least 100 characters), ``POST /api/v1/submissions/
bulk-approve/``, ``POST /api/v1/submissions/bonus-payments/`` (set up, ``csv_bonuses``),
``POST /api/v1/bulk-bonus-payments/{id}/pay/`` (not idempotent), ``POST /api/v1/messages/``.

Idempotency: a batch's id is a hash of its task keys; its study's ``internal_name`` is
``clicloop <batch_id>`` and its ``metadata`` holds the task keys, so dispatching the same tasks
again (after a crash, in another process) finds the study instead of creating a second one, and
publishes it if the crash came between create and publish.

Pricing: reward per submission = ``reward_per_hour`` x ``estimated_completion_time`` (minutes),
rounded up to the cent. The time is the parameter if given, else the median active seconds
observed so far (the ``median_task_seconds`` prior until five answers are in) x
``tasks_per_submission``. ``reward_per_hour`` below Prolific's minimum (GBP 6.00 / USD 8.00)
is refused; it defaults to the recommended GBP 9.00 / USD 12.00. When a study's median
completion time turns out longer than estimated, :meth:`adjustment_payments` tops everyone up.

Review and pay (for the loop and the ledger; each returns what it did; in
:mod:`clicloop.backends.prolific_pay`, amounts exact, in whole cents): :meth:`review` (accept,
or reject with a reason: no reason raises :class:`RejectionReasonRequired`), :meth:`approve_all`,
:meth:`pay_bonus` (set up + pay + a message with the reason), :meth:`adjustment_payments`. Paying is
not idempotent at Prolific: each payment takes a ``key`` and goes through the payments journal
(``params.payments_journal``, :mod:`clicloop.backends.prolific_journal`), which refuses a key paid
before in any process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from clicloop.backends.prolific_client import (
    ANSWERED, PROLIFIC_MINIMUM_PER_HOUR, PROLIFIC_RECOMMENDED_PER_HOUR, JsonClient, ProlificError, UnpaidEffort,
    batch_id as _batch_id, epoch as _epoch, html as _html, jsonable as _jsonable, minutes_for, reward_cents,
    readable_submission, safe as _safe, seconds as _seconds,
)
from clicloop.backends.prolific_pay import (  # noqa: F401 (names of this module's public API)
    APPEAL_NOTE, REJECTION_CATEGORIES, ProlificPayments, RejectionReasonRequired,
)
from clicloop.backends.prolific_sizing import RateSizedStudies, Sizing, StudySizer  # continuous mode
from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S
from clicloop.orchestrator.ledger import money
from clicloop.orchestrator.types import Answer, BackendContext, PublishedBatch, Task, UnpaidWork

UNPAID = ("RETURNED", "TIMED-OUT")
log = logging.getLogger(__name__)


@dataclass
class _Study:
    id: str
    batch_id: str
    keys: tuple[str, ...]
    status: str
    reward_cents: int
    places: int = 0
    sizing: dict[str, Any] | None = None  # continuous mode: the rule that sized it (its metadata's ``sizing``)


class ProlificBackend(ProlificPayments, RateSizedStudies):
    """Label through Prolific studies; see the module docstring for the design.

    Parameters
    ----------
    survey_url: base URL of the survey tool that shows the tasks (protocol in the module doc).
    base_url: Prolific's API root.
    token: the API token; None (the default) reads the environment variable ``token_env``. A
        config gives it as ``{env: NAME}`` or ``{file: PATH}``, never literally
        (orchestrator/credentials.py); it is never stored in the ledger.
    currency: the workspace currency, ``"GBP"`` or ``"USD"`` (the loop's ``wage_floor`` for this backend must be
        in it: ``wage_floor.per_backend.prolific: {amount: 9.0, currency: GBP}``).
    reward_per_hour: target pay per hour (the wage floor); default Prolific's recommendation.
    estimated_completion_time: minutes per submission; None to derive it from task times.
    median_task_seconds: prior median seconds per task, used until 5 answers are observed.
    tasks_per_submission: tasks one participant does in one submission.
    fee_rate: Prolific's service fee on rewards, for the cost accounting.
    instructions: shown in the study description and the survey; project: Prolific project id.
    study_minutes, rate_window_s, first_places, min_places, max_places: continuous mode only, the
        size of each study from the measured answer rate (:mod:`clicloop.backends.prolific_sizing`).
    payments_journal: a file where each bonus and adjustment is written before it is paid and once
        it is (:mod:`clicloop.backends.prolific_journal`); paying without one is refused, since
        Prolific's pay call is not idempotent. Keep it with the ledger.
    """

    confidential = False  # an open crowd: never for sensitive items
    reads_ground_truth = False
    clock = staticmethod(time.time)  # continuous mode's rate clock (tests set a fake one on the instance)

    def __init__(self, survey_url: str, base_url: str = "https://api.prolific.com", token: str | None = None,
                 token_env: str = "PROLIFIC_TOKEN", currency: str = "GBP", reward_per_hour: float | Decimal | str | None = None,
                 estimated_completion_time: float | None = None, median_task_seconds: float = 30.0,
                 tasks_per_submission: int = 1, fee_rate: float = 0.333, instructions: str = "",
                 project: str | None = None, timeout_s: float = 30.0, study_minutes: float = 15.0,
                 rate_window_s: float = 1800.0, first_places: int = 10, min_places: int = 1, max_places: int = 100,
                 payments_journal: str | None = None):
        self.survey_url = survey_url
        self.base_url = base_url
        self.token = token
        self.token_env = token_env
        self.currency = currency
        self.reward_per_hour = reward_per_hour
        self.estimated_completion_time = estimated_completion_time
        self.median_task_seconds = median_task_seconds
        self.tasks_per_submission = tasks_per_submission
        self.fee_rate = fee_rate
        self.instructions = instructions
        self.project = project
        self.timeout_s = timeout_s
        self.study_minutes = study_minutes
        self.rate_window_s = rate_window_s
        self.first_places = first_places
        self.min_places = min_places
        self.max_places = max_places
        self.payments_journal = payments_journal

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self, context: BackendContext) -> None:
        if self.currency not in PROLIFIC_MINIMUM_PER_HOUR:
            raise ProlificError(f"prolific: currency must be one of {', '.join(PROLIFIC_MINIMUM_PER_HOUR)}")
        rate = self._rate()
        minimum = PROLIFIC_MINIMUM_PER_HOUR[self.currency]
        if not rate >= minimum:
            raise ProlificError(f"prolific: reward_per_hour {rate} {self.currency} is under Prolific's minimum of "
                                f"{minimum:.2f} {self.currency}/h; raise it (recommended: "
                                f"{PROLIFIC_RECOMMENDED_PER_HOUR[self.currency]:.2f})")
        if self.tasks_per_submission < 1 or not self.median_task_seconds > 0:
            raise ProlificError("prolific: tasks_per_submission must be >= 1 and median_task_seconds > 0")
        token = self.token or os.environ.get(self.token_env)
        if not token:
            raise ProlificError(f"prolific: no API token; set the {self.token_env} environment variable "
                                "(or give params.token as {env: NAME} or {file: PATH})")
        self.rate_ = float(rate)
        self.context_ = context
        self.api_ = JsonClient(self.base_url, token, timeout_s=self.timeout_s)
        self.survey_ = JsonClient(self.survey_url, None, timeout_s=self.timeout_s, name="survey tool")
        self.studies_: dict[str, _Study] = {}  # by study id
        self.study_of_: dict[str, str] = {}  # task key -> study id
        self.observed_s_: dict[str, float] = {}  # task key -> active seconds
        self.submission_of_: dict[str, tuple[str, str, str]] = {}  # task key -> (submission, participant, study)
        self.unpaid_: dict[str, UnpaidEffort] = {}
        self.journal_ = None  # read on the first payment
        self.unreadable_: set[str] = set()  # submissions skipped (said once each)
        self.busy_: dict[str, int] = {}  # study id -> places taken, as last read
        self.pending_: dict[str, Task] = {}  # continuous mode: tasks gathering for the next study
        self.sizer_: StudySizer | None = None
        if context.mode == "continuous":
            self.sizer_ = StudySizer(self.study_minutes, self.rate_window_s, self.first_places, self.min_places,
                                     self.max_places, self.tasks_per_submission, clock=self.clock)
            self.sizer_.check()
        self._refresh()

    def close(self) -> None:
        pass

    def expected_cost_per_task(self) -> Decimal:
        """Reward + fee per task at the current pricing, exact as a submission would book it (the
        study's reward in cents shared over its tasks, half-even to the micro-unit, plus the fee);
        callable before ``open``: the loop checks budgets first."""
        cents = reward_cents(self._rate(), self._minutes())
        reward = (Decimal(cents) / 100 / self.tasks_per_submission).quantize(money.MICRO, ROUND_HALF_EVEN)
        return reward + money.share(reward, self.fee_rate)

    # -- dispatch --------------------------------------------------------------------------------

    def dispatch(self, tasks: Sequence[Task]) -> None:
        if self.sizer_ is not None:
            return self._gather(tasks)  # continuous mode: studies sized by the answer rate
        new = sorted({t.key: t for t in tasks if t.key not in self.study_of_}.values(), key=lambda t: t.key)
        if not new:
            for study_id in {self.study_of_[t.key] for t in tasks}:
                self._publish(self.studies_[study_id])
            return
        batch_id = _batch_id(self.context_.loop, new)
        study = next((s for s in self.studies_.values() if s.batch_id == batch_id), None)
        if study is None:
            self._refresh()
            study = next((s for s in self.studies_.values() if s.batch_id == batch_id), None)
        if study is None:
            self._create(batch_id, new)
        for study_id in {self.study_of_[t.key] for t in tasks}:  # the study each task is remembered in: one per task
            self._publish(self.studies_[study_id])

    def _create(self, batch_id: str, tasks: list[Task], places: int | None = None, sizing: Sizing | None = None) -> _Study:
        code = hashlib.sha256(f"complete:{batch_id}".encode()).hexdigest()[:8].upper()
        places = places or -(-len(tasks) // self.tasks_per_submission)
        minutes = self._minutes()
        cents = reward_cents(self.rate_, minutes)
        labels = ", ".join(self.context_.labels)
        warnings = sorted({t.content_warning for t in tasks if t.content_warning})
        warning = "".join(f"<p><b>Content warning:</b> {_html(w)}</p>" for w in warnings)  # seen before taking part
        self.survey_.request("PUT", f"/batches/{batch_id}", body={
            "batch_id": batch_id, "purpose": self.context_.purpose, "instructions": self.instructions,
            "labels": list(self.context_.labels), "completion_code": code,
            "tasks_per_submission": self.tasks_per_submission,
            "tasks": [{"key": t.key, "item_id": t.item_id, "payload": _jsonable(t.payload), "content_warning": t.content_warning}
                      for t in tasks],
        })
        body: dict[str, Any] = {
            "name": f"Short labeling task ({self.tasks_per_submission} item(s), about {minutes} min)",
            "internal_name": f"clicloop {batch_id}",
            "description": (f"{warning}<p><b>What this is for:</b> {_html(self.context_.purpose)}</p>"
                            f"<p>{_html(self.instructions)}</p><p>For each item you choose one of: {_html(labels)}.</p>"),
            "external_study_url": (f"{self.survey_url.rstrip('/')}/batches/{batch_id}/take?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
                                   "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"),
            "prolific_id_option": "url_parameters",
            "completion_codes": [{"code": code, "code_type": "COMPLETED", "actions": [{"action": "MANUALLY_REVIEW"}]}],
            "total_available_places": places,
            "estimated_completion_time": minutes,
            "reward": cents,
            "metadata": json.dumps({"clicloop_batch": batch_id, "task_keys": [t.key for t in tasks],
                                    **({"sizing": sizing.as_json()} if sizing else {})}),
        }
        if self.project:
            body["project"] = self.project
        # never repeated: a create the server made but answered 5xx to would leave a second study for the
        # same tasks; the error stops the run, and a resume finds the draft by its name (_refresh)
        created = self.api_.request("POST", "/api/v1/studies/", body=body, safe_to_repeat=False)
        study = _Study(str(created["id"]), batch_id, tuple(t.key for t in tasks), str(created.get("status", "UNPUBLISHED")), cents, places,
                       sizing.as_json() if sizing else None)
        self._remember(study)
        return study

    def _publish(self, study: _Study) -> None:
        if study.status == "UNPUBLISHED":
            answer = self.api_.request("POST", f"/api/v1/studies/{study.id}/transition/", body={"action": "PUBLISH"})
            study.status = str((answer or {}).get("status", "ACTIVE"))

    def _refresh(self) -> None:
        """Find this loop's studies at Prolific (after a restart, or a crash between create and publish)."""
        prefix = f"clicloop {_safe(self.context_.loop)}-"
        for row in self.api_.paged("/api/v1/studies/", {}):
            if not str(row.get("internal_name") or "").startswith(prefix) or str(row.get("id")) in self.studies_:
                continue
            detail = self.api_.request("GET", f"/api/v1/studies/{row['id']}/")
            try:
                meta = json.loads(detail.get("metadata") or "{}")
                study = _Study(str(detail["id"]), str(meta["clicloop_batch"]), tuple(meta["task_keys"]),
                               str(detail.get("status")), int(detail.get("reward") or 0), int(detail.get("total_available_places") or 0),
                               meta.get("sizing") if isinstance(meta.get("sizing"), dict) else None)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ProlificError(f"prolific: study {row.get('id')} is named like ours but its metadata is unreadable: {e}") from e
            self._remember(study)

    def _remember(self, study: _Study) -> None:
        """Keep ``study``; each task stays in the study it was first found in, unless that one is a
        draft and this one is published (two studies for one batch, left by an older clicloop that
        repeated a create: the draft is never published)."""
        self.studies_[study.id] = study
        for key in study.keys:
            held = self.studies_.get(self.study_of_.get(key, ""))
            if held is None or (held.status == "UNPUBLISHED" and study.status != "UNPUBLISHED"):
                self.study_of_[key] = study.id
            elif held.id != study.id:
                log.warning("prolific: study %s holds task %s of study %s too; it is not used (delete it at Prolific)",
                            study.id, key, held.id)

    # -- collect ---------------------------------------------------------------------------------

    def collect(self, tasks: Sequence[Task]) -> list[Answer]:
        wanted = {t.key for t in tasks}
        if wanted - set(self.study_of_) - set(self.pending_):
            self._refresh()
        answers: list[Answer] = []
        for study_id in sorted({self.study_of_[k] for k in wanted if k in self.study_of_}):
            answers.extend(a for a in self._study_answers(self.studies_[study_id]) if a.task_key in wanted or a.event == "extra")
        if self.sizer_ is not None:
            self._flush()  # the rate and the free places changed
        return answers

    def _study_answers(self, study: _Study) -> list[Answer]:
        submissions = [s for s in self.api_.paged("/api/v1/submissions/", {"study": study.id})
                       if readable_submission(s, study.id, self.unreadable_)]
        responses = self.survey_.request("GET", f"/batches/{study.batch_id}/responses") or {}
        by_session: dict[str, list[dict[str, Any]]] = {}
        for r in responses.get("results", []):
            if r.get("task_key") in study.keys:
                by_session.setdefault(str(r.get("session_id")), []).append(r)
        answers = []
        first = _first_answers(submissions, by_session)
        for sub in sorted(submissions, key=lambda s: (str(s.get("started_at")), str(s.get("id")))):
            status, sub_id = str(sub.get("status")), str(sub.get("id"))
            participant = str(sub.get("participant_id") or sub.get("participant") or "")
            started, completed = _epoch(sub.get("started_at")), _epoch(sub.get("completed_at"))
            if status in UNPAID and started is not None:
                end = completed if completed is not None else started
                self.unpaid_[sub_id] = UnpaidEffort(participant, study.id, sub_id, status, max(end - started, 0.0))
            rows = by_session.get(sub_id, [])
            if status not in ANSWERED or not rows:
                continue
            total = (completed - started) if started is not None and completed is not None else float("nan")
            reward = (Decimal(study.reward_cents) / 100 / len(rows)).quantize(money.MICRO, ROUND_HALF_EVEN)  # exact
            for r, active in zip(rows, _task_seconds(rows, total)):
                key = str(r["task_key"])
                self.observed_s_[key] = active
                label = r.get("label")
                extra = first.get(key, sub_id) != sub_id  # another submission answered this task first
                if not extra:
                    self.submission_of_.setdefault(key, (sub_id, participant, study.id))  # whom a review of the task concerns
                answers.append(Answer(
                    task_key=key, worker=participant, label=None if label in (None, "") else str(label),
                    active_s=active, reward=reward, fee=money.share(reward, self.fee_rate),
                    currency=self.currency, accepted_at=started, submitted_at=completed, external_id=sub_id,
                    event="extra" if extra else "created", version=f"extra:{sub_id}" if extra else "",
                ))
        self._observe(answers, submissions, study)
        return answers

    def returned_effort(self) -> list[UnpaidEffort]:
        """Unpaid time on returned or timed-out submissions seen so far (for the ledger's overhead)."""
        return sorted(self.unpaid_.values(), key=lambda u: u.submission_id)

    def unpaid_work(self) -> list[UnpaidWork]:
        """:meth:`returned_effort` as the loop records it: one item per submission (keyed by its
        id), counted as the participant's unpaid returned work in every wage view."""
        return [UnpaidWork(f"submission:{u.submission_id}", u.participant, u.seconds, u.status.lower(),
                           self.studies_[u.study_id].keys if u.study_id in self.studies_ else ())
                for u in self.returned_effort() if u.participant]

    def published_batches(self) -> list[PublishedBatch]:
        """The loop's studies that went out, with their places and, in continuous mode, the
        sizing rule's record (for the ledger)."""
        return [PublishedBatch(s.batch_id, s.keys, s.places, s.id, s.sizing)
                for s in sorted(self.studies_.values(), key=lambda s: s.id) if s.status != "UNPUBLISHED"]

    # -- pricing ---------------------------------------------------------------------------------

    def _rate(self) -> float:
        default = PROLIFIC_RECOMMENDED_PER_HOUR.get(self.currency, 0.0)
        return float(default if self.reward_per_hour is None else self.reward_per_hour)

    def _minutes(self) -> int:
        if self.estimated_completion_time is not None:
            return minutes_for(float(self.estimated_completion_time) * 60.0)
        observed = list(self.observed_s_.values()) if hasattr(self, "observed_s_") else []
        per_task = statistics.median(observed) if len(observed) >= 5 else self.median_task_seconds
        return minutes_for(per_task * self.tasks_per_submission)

    def __repr__(self) -> str:
        return f"ProlificBackend(base_url={self.base_url!r}, currency={self.currency!r}, reward_per_hour={self.reward_per_hour})"


def _task_seconds(rows: Sequence[dict[str, Any]], total: float) -> list[float]:
    """Each task's seconds in one submission of ``total`` seconds (NaN: unknown): the survey's
    per-task seconds, or an even share of the submission; the submission's time beyond the tasks'
    own (instructions, consent, loading: time the study pays for) split evenly over its tasks, so
    the answers hold the whole submission (they held the survey's seconds alone: a 490 s
    submission recorded as 190 s, the wage on it read 21.88 GBP/h for about 12). A submission
    that lasted beyond the plausibility limit (a clock left running) adds nothing."""
    share = total / len(rows)
    own = [_seconds(r.get("active_s"), share) for r in rows]
    rest = total - sum(own)
    if not (0 < rest and total <= DEFAULT_MAX_ACTIVE_S):  # unknown or none; the survey counted more than the
        return own  # submission lasted; or a submission clock beyond the plausibility limit: the survey's seconds stand
    return [round(x + rest / len(rows), 3) for x in own]


def _first_answers(submissions: Sequence[dict[str, Any]], by_session: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """For each task key, the submission that answered it first, by completion, rejected or not (a
    completed submission's time never changes, so a later poll or review never changes which one
    that is): its answer is the task's; another submission's answer to the same task is an extra
    answer, paid all the same (Prolific pays every approved submission)."""
    done = [s for s in submissions if s.get("completed_at") and str(s.get("status")) not in UNPAID
            and by_session.get(str(s.get("id")))]
    first: dict[str, str] = {}
    for sub in sorted(done, key=lambda s: (str(s.get("completed_at")), str(s.get("id")))):
        for r in by_session[str(sub.get("id"))]:
            first.setdefault(str(r["task_key"]), str(sub.get("id")))
    return first
