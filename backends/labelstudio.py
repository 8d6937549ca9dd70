"""Label Studio as a crowd backend: clicloop drives, in-house annotators label in Label Studio.

- ``open`` creates (or reuses, by title or id) a project whose labeling config is built from the
  loop's label set, with the purpose statement shown above every task.
- ``dispatch`` imports one Label Studio task per clicloop task, keeping the clicloop task key in
  ``task.data["clicloop_key"]``; keys already in the project are never imported again, and an
  import whose answer was lost (server restart) is re-checked before it is retried.
- ``collect`` reads the project's annotations: ``lead_time`` becomes ``Answer.active_s``, the
  annotator's user id ``Answer.worker`` (the ledger pseudonymises it), a skipped task
  (``was_cancelled``) an answer with ``label=None``. An annotation changed or deleted after it
  was reported comes back as ``event="updated"`` / ``"deleted"`` with a ``version`` that makes
  the correction idempotent. Which annotation was reported is kept in the Label Studio task's
  ``meta["clicloop_reported"]``, so deletions are noticed even across clicloop restarts
  (:mod:`clicloop.backends.labelstudio_answers` reads a task's annotations). Any
  other person's annotation of the task (Label Studio on SQLite can hand one task to two people at once)
  is work done all the same: it comes back as ``event="extra"``, once, and the loop records and
  pays it as an answer of its own (:mod:`clicloop.orchestrator.crowd.extra`).
- With ``webhook_port`` set, ``open`` also starts a small receiver (:mod:`clicloop.backends.labelstudio_webhook`)
  and registers a project webhook for annotation events; the receiver answers each delivery at
  once and ``collect`` works through the queue, polling the project on its first call and every
  ``poll_every_s`` as well, since a delivery can be lost. A delivery only says where to look:
  each new annotation is read back through the API (its task, once) before it is recorded, so a
  forged delivery pays no one. ``close`` removes the webhook.
- Every call retries with backoff while Label Studio is down (see :mod:`clicloop.backends.labelstudio_client`).
- In ``loop.mode: continuous`` the loop may take queued tasks back: ``withdraw`` deletes those
  nobody can have started (:mod:`clicloop.backends.labelstudio_withdraw` has the rule).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from clicloop.backends.labelstudio_client import LabelStudioClient, LabelStudioError, LabelStudioUnreachable
from clicloop.backends.labelstudio_answers import Annotations
from clicloop.backends.labelstudio_deliveries import Deliveries
from clicloop.backends.labelstudio_format import FROM_NAME, TO_NAME, choices_of, label_config
from clicloop.backends.labelstudio_webhook import WebhookReceiver, open_webhook
from clicloop.backends.labelstudio_withdraw import Withdrawal
from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S, check_limit
from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.ledger import money
from clicloop.orchestrator.types import Answer, BackendContext, Task

log = logging.getLogger("clicloop.labelstudio")

__all__ = ["LabelStudioBackend", "annotation_label", "choices_of", "label_config"]


class LabelStudioBackend(Annotations, Deliveries, Withdrawal):
    """In-house annotators in a Label Studio project.

    Parameters
    ----------
    url: Label Studio base URL (default: env ``LABEL_STUDIO_URL``).
    api_key: the API token. A config never holds it: leave it out and set the environment variable
        ``api_key_env`` names (default ``LABEL_STUDIO_API_KEY``), or give ``{env: NAME}`` or
        ``{file: PATH}`` (orchestrator/credentials.py); it is never stored in the ledger.
    project: a project id (int) to use, or a title to find or create (default ``clicloop: <loop>``).
    kind: ``label`` (pick the label) or ``review`` (the model's label is pre-selected; confirm or fix).
    pre_annotations: send the model's prediction as a pre-annotation when the task carries one.
    hourly_wage, reward_per_task, currency: what an answer costs; in-house annotators are paid by
        the hour, so the reward is ``reward_per_task + hourly_wage * lead_time / 3600``.
    max_active_s: the plausibility limit on one annotation's ``lead_time`` (default 8 h); a
        larger, non-finite or negative one is quarantined: 0 s, unpaid, the raw value in the reason.
    timeout_s, retry_for_s: per-request timeout, and how long Label Studio may be down before
        dispatch/collect give up (the loop then stops; run it again to resume).
    webhook_port: receive annotations by webhook on this port (0: any free port); None (the
        default) polls only. Label Studio must reach the receiver: on the same machine, start it
        with ``SSRF_PROTECTION_ENABLED=false`` (else it refuses webhooks to 127.0.0.1).
    webhook_host: the address the receiver binds (default ``127.0.0.1``).
    webhook_url: the base URL Label Studio posts to, when it is not ``http://<host>:<port>``
        (Label Studio in a container, behind a proxy); a secret path is appended.
    poll_every_s: with a webhook, poll the project this often as well (lost deliveries).
    annotators: the people who label this project (continuous mode: the default lookahead is twice
        that, and the first ``2 x annotators + 1`` open tasks are never withdrawn); None: the users of
        the token's organization.
    withdraw_queued: in continuous mode, take back queued tasks that fell out of the ranking
        (never one someone started; see :mod:`clicloop.backends.labelstudio_withdraw`).
    """

    confidential = True
    reads_ground_truth = False
    reports_changes = True  # collect([]) reports extra answers and corrections to any task of the loop

    def __init__(self, url: str | None = None, api_key: str | None = None, api_key_env: str = "LABEL_STUDIO_API_KEY",
                 project: int | str | None = None, kind: str = "label", pre_annotations: bool = False,
                 hourly_wage: float | None = None, reward_per_task: float = 0.0, currency: str = "EUR",
                 timeout_s: float = 30.0, retry_for_s: float = 120.0, webhook_port: int | None = None,
                 webhook_host: str = "127.0.0.1", webhook_url: str | None = None, poll_every_s: float = 30.0,
                 max_active_s: float = DEFAULT_MAX_ACTIVE_S, annotators: int | None = None, withdraw_queued: bool = True):
        self.url = url
        self.api_key = api_key
        self.api_key_env = api_key_env
        self.project = project
        self.kind = kind
        self.pre_annotations = pre_annotations
        self.hourly_wage = hourly_wage
        self.reward_per_task = reward_per_task
        self.currency = currency
        self.timeout_s = timeout_s
        self.retry_for_s = retry_for_s
        self.webhook_port = webhook_port
        self.webhook_host = webhook_host
        self.webhook_url = webhook_url
        self.poll_every_s = poll_every_s
        self.max_active_s = max_active_s
        self.annotators = annotators
        self.withdraw_queued = withdraw_queued

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self, context: BackendContext) -> None:
        self._validate()
        url = self.url or os.environ.get("LABEL_STUDIO_URL")
        key = self.api_key or os.environ.get(self.api_key_env)
        if not url:
            raise LabelStudioError("labelstudio backend: give params.url or set LABEL_STUDIO_URL")
        if not key:
            raise LabelStudioError(f"labelstudio backend: no API token; set the environment variable {self.api_key_env} "
                                   "(or give params.api_key as {env: NAME} or {file: PATH})")
        self.context_ = context
        self.client_ = LabelStudioClient(url, key, timeout_s=self.timeout_s, retry_for_s=self.retry_for_s)
        self.project_id_ = self._project(context)
        self.prefix_ = f"{context.loop}/"
        self.task_ids_: dict[str, int] = {}
        self.emitted_: set[tuple[str, str, str]] = set()
        self.reported_: dict[str, int] = {}  # task key -> the annotation id reported to the loop
        self.hooked_: dict[str, dict[int, dict[str, Any]]] = {}  # unreported annotations from webhooks
        self.annotation_keys_: dict[int, tuple[str, int]] = {}  # annotation id -> (task key, task id)
        self.metas_: dict[int, dict[str, Any]] = {}
        self.sources_: dict[str, str] = {}  # task key -> where its answer first came from
        self.confirmed_: dict[int, dict[str, Any]] = {}  # webhook annotations as read back through the API
        self.claimed_: dict[str, int] = {}  # task key -> the Label Studio task a delivery says holds it
        self.counts_ = dict.fromkeys(("polls", "answers_by_webhook", "answers_by_poll", "corrections_by_webhook",
                                      "corrections_by_poll", "extras_by_webhook", "extras_by_poll",
                                      "webhook_unconfirmed"), 0)
        self.last_poll_, self.poll_soon_ = -math.inf, False
        self.receiver_: WebhookReceiver | None = None
        self.webhook_id_: int | None = None
        self._refresh_task_ids()
        if self.webhook_port is not None:
            self.receiver_, self.webhook_id_ = open_webhook(self.client_, self.project_id_, context.loop, self.webhook_host,
                                                            self.webhook_port, self.webhook_url)

    def _validate(self) -> None:
        if self.kind not in ("label", "review"):
            raise LabelStudioError(f"labelstudio backend: kind must be 'label' or 'review', not {self.kind!r}")
        if self.hourly_wage is not None and self.hourly_wage < 0 or self.reward_per_task < 0:
            raise LabelStudioError("labelstudio backend: hourly_wage and reward_per_task must not be negative")
        port = self.webhook_port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            raise LabelStudioError(f"labelstudio backend: webhook_port must be a port number (0 for any free one), not {port!r}")
        if not isinstance(self.poll_every_s, (int, float)) or not self.poll_every_s > 0:
            raise LabelStudioError(f"labelstudio backend: poll_every_s must be a positive number of seconds, not {self.poll_every_s!r}")
        n = self.annotators
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise LabelStudioError(f"labelstudio backend: annotators must be a whole number of people (1 or more), or null, not {n!r}")
        try:
            check_limit(self.max_active_s, "backend.params.max_active_s")
        except ConfigError as e:
            raise LabelStudioError(f"labelstudio backend: {e}") from e

    def _project(self, context: BackendContext) -> int:
        client = self.client_
        if isinstance(self.project, int):
            project = client.project(self.project)
        else:
            title = self.project or f"clicloop: {context.loop}"
            project = client.find_project(title) or client.create_project(
                title, label_config(context.labels, context.purpose, self.kind), description=context.purpose
            )
        found = choices_of(project.get("parsed_label_config") or {})
        if set(found) != set(context.labels):
            raise LabelStudioError(
                f"Label Studio project {project['id']} ({project.get('title')!r}) offers the labels {list(found)}, "
                f"the loop needs {list(context.labels)}; point params.project at another project or fix its labeling config"
            )
        return int(project["id"])

    def expected_cost_per_task(self) -> Decimal | None:
        """The reward per task, exact; None when annotators are paid by the hour (it depends on their time)."""
        return None if self.hourly_wage else money.exact(self.reward_per_task)

    def close(self) -> None:
        """Remove the webhook (best effort: a Label Studio that is down is not waited for) and stop."""
        if getattr(self, "webhook_id_", None) is not None:
            try:
                self.client_.delete_webhook(int(self.webhook_id_), retry=False)
            except LabelStudioError as e:
                log.warning("could not remove webhook %s from Label Studio project %s (%s); the next run of this loop "
                            "removes it, or delete it under Settings > Webhooks", self.webhook_id_, self.project_id_, e)
            self.webhook_id_ = None
        if getattr(self, "receiver_", None) is not None:
            self.receiver_.stop()  # kept: stats() still reports its counts
        if hasattr(self, "client_"):
            self.client_.close()

    # -- dispatch --------------------------------------------------------------------------------

    def _refresh_task_ids(self) -> None:
        for t in self.client_.iter_tasks(self.project_id_, fields="task_only"):
            key = (t.get("data") or {}).get("clicloop_key")
            if isinstance(key, str):
                self.task_ids_.setdefault(key, int(t["id"]))

    def dispatch(self, tasks: Sequence[Task]) -> None:
        """Import the tasks not yet in the project; idempotent by task key."""
        deadline = time.monotonic() + self.retry_for_s
        sleep = 0.5
        while True:
            todo = list({t.key: t for t in tasks if t.key not in self.task_ids_}.values())
            if not todo:
                return
            try:
                ids = self.client_.import_tasks(self.project_id_, [self._ls_task(t) for t in todo], retry=False)
            except LabelStudioUnreachable as e:
                # the import may have happened before the answer was lost: re-read, then retry the rest
                if time.monotonic() + sleep > deadline:
                    raise LabelStudioUnreachable(f"dispatch to Label Studio failed for {self.retry_for_s:g}s: {e}") from e
                log.warning("Label Studio import failed (%s); re-reading the project in %.1fs", e, sleep)
                time.sleep(sleep)
                sleep = min(2 * sleep, 8.0)
                self._refresh_task_ids()  # retries on its own while the server is down
                continue
            if len(ids) != len(todo):
                self._refresh_task_ids()
            else:
                self.task_ids_.update({t.key: i for t, i in zip(todo, ids)})

    def _ls_task(self, task: Task) -> dict[str, Any]:
        text = task.payload if isinstance(task.payload, str) else f"item {task.item_id}"
        body: dict[str, Any] = {
            "data": {
                "text": text, "purpose": task.purpose, "clicloop_key": task.key, "clicloop_loop": task.loop,
                "clicloop_round": task.round_no, "clicloop_item": task.item_id, "clicloop_kind": task.kind,
                "content_warning": task.content_warning or "",  # annotators may skip a flagged task (an opt-out)
            }
        }
        prediction = getattr(task, "prediction", None)
        if (self.pre_annotations or self.kind == "review") and prediction:
            label, score = (prediction, None) if isinstance(prediction, str) else tuple(prediction)[:2]
            body["predictions"] = [{
                "model_version": f"{task.loop}-r{task.round_no}", "score": score,
                "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [str(label)]}}],
            }]
        return body

    # -- collect ---------------------------------------------------------------------------------

    def collect(self, tasks: Sequence[Task]) -> list[Answer]:
        """Answers for ``tasks``, plus corrections to any earlier answer of this loop.

        Webhook deliveries are drained first; the project is polled on every call without a
        webhook, and with one on the first call and then every ``poll_every_s`` (deliveries can
        be lost), which also answers the tasks the webhooks left unanswered.
        """
        wanted = {t.key for t in tasks}
        found: list[tuple[Answer, str]] = []
        marks: dict[int, tuple[dict[str, Any], int, str]] = {}
        if self.receiver_ is not None:
            found += [(a, "webhook") for a in self._from_webhooks(wanted, marks)]
        if self.receiver_ is None or self.poll_soon_ or time.monotonic() - self.last_poll_ >= self.poll_every_s:
            found += [(a, "poll") for a in self._poll(wanted, marks)]
        for task_id, (meta, annotation_id, key) in marks.items():
            self.client_.update_task(task_id, meta={**meta, "clicloop_reported": annotation_id})
            self.reported_[key] = annotation_id
            self.hooked_.pop(key, None)
        return self._fresh(found)

    def _fresh(self, found: list[tuple[Answer, str]]) -> list[Answer]:
        """One created answer per key, and each correction once; counts where answers came from."""
        out: list[Answer] = []
        created: set[str] = set()
        for answer, source in found:
            if answer.event == "created":
                if answer.task_key in created:
                    continue
                created.add(answer.task_key)
                if answer.task_key not in self.sources_:
                    self.sources_[answer.task_key] = source
                    self.counts_[f"answers_by_{source}"] += 1
            else:
                mark = (answer.task_key, answer.event, answer.version)
                if mark in self.emitted_:
                    continue
                self.emitted_.add(mark)
                self.counts_[f"{'extras' if answer.event == 'extra' else 'corrections'}_by_{source}"] += 1
            out.append(answer)
        return out

    def _poll(self, wanted: set[str], marks: dict[int, tuple[dict[str, Any], int, str]]) -> list[Answer]:
        self.last_poll_, self.poll_soon_ = time.monotonic(), False
        self.counts_["polls"] += 1
        answers: list[Answer] = []
        for ls_task in self.client_.iter_tasks(self.project_id_):
            key = (ls_task.get("data") or {}).get("clicloop_key")
            if isinstance(key, str) and key.startswith(self.prefix_):
                answers += self._judge(key, ls_task, wanted, marks)
        return answers

    def _key_of(self, task_id: int) -> str | None:
        return next((k for k, i in self.task_ids_.items() if i == task_id), None)

    def stats(self) -> dict[str, int]:
        """Where answers came from: webhook deliveries (received, accepted, ignored, rejected),
        polls, and answers and corrections by webhook or by poll."""
        deliveries = self.receiver_.stats() if getattr(self, "receiver_", None) is not None else {}
        return {**{f"webhook_{k}": v for k, v in deliveries.items()}, **getattr(self, "counts_", {})}

    def __repr__(self) -> str:
        return f"LabelStudioBackend(url={self.url!r}, project={self.project!r}, kind={self.kind!r})"

