"""Label Studio as a crowd backend: clicloop drives, in-house annotators label in Label Studio.

- ``open`` creates (or reuses, by title or id) a project whose labeling config is built from the
  loop's label set, with the purpose statement shown above every task.
- ``dispatch`` imports one Label Studio task per clicloop task, keeping the clicloop task key in
  ``task.data["clicloop_key"]``; keys already in the project are never imported again, and an
  import whose answer was lost (server restart) is re-checked before it is retried.
- ``collect`` polls the project's annotations: ``lead_time`` becomes ``Answer.active_s``, the
  annotator's user id ``Answer.worker`` (the ledger pseudonymises it), a skipped task
  (``was_cancelled``) an answer with ``label=None``. An annotation changed or deleted after it
  was reported comes back as ``event="updated"`` / ``"deleted"`` with a ``version`` that makes
  the correction idempotent. Which annotation was reported is kept in the Label Studio task's
  ``meta["clicloop_reported"]``, so deletions are noticed even across clicloop restarts.
- Every call retries with backoff while Label Studio is down (see :mod:`backends.labelstudio_client`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from backends.labelstudio_client import LabelStudioClient, LabelStudioError, LabelStudioUnreachable
from orchestrator.types import Answer, BackendContext, Task

log = logging.getLogger("clicloop.labelstudio")

FROM_NAME, TO_NAME = "label", "text"
UPDATE_AFTER_S = 0.5  # Label Studio stamps updated_at a few microseconds after created_at on create


def label_config(labels: Sequence[str], purpose: str, kind: str = "label") -> str:
    """The labeling config XML for a single-choice task over ``labels`` with the purpose shown."""
    choices = "\n".join(f"    <Choice value={quoteattr(str(label))}/>" for label in labels)
    hint = (
        '\n  <Header value="The model\'s answer is pre-selected: keep it if it is right, change it if not." size="6"/>'
        if kind == "review" else ""
    )
    return (
        "<View>\n"
        f"  <Header value={quoteattr(purpose.replace('$', '＄'))} size=\"5\"/>{hint}\n"
        f'  <Text name="{TO_NAME}" value="$text"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true" required="true">\n'
        f"{choices}\n  </Choices>\n</View>"
    )


def choices_of(parsed_label_config: dict[str, Any]) -> tuple[str, ...]:
    """The label values of the first Choices control in a project's parsed label config."""
    for control in (parsed_label_config or {}).values():
        if control.get("type") == "Choices":
            return tuple(str(v) for v in control.get("labels", []))
    return ()


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def annotation_label(annotation: dict[str, Any], from_name: str = FROM_NAME) -> str | None:
    """The chosen label of a choices annotation; None if skipped or empty."""
    if annotation.get("was_cancelled"):
        return None
    for region in annotation.get("result") or []:
        if region.get("from_name") == from_name and region.get("type") == "choices":
            chosen = (region.get("value") or {}).get("choices") or []
            return str(chosen[0]) if chosen else None
    return None


class LabelStudioBackend:
    """In-house annotators in a Label Studio project.

    Parameters
    ----------
    url: Label Studio base URL (default: env ``LABEL_STUDIO_URL``).
    api_key: the API token; prefer ``api_key_env``, the name of the environment variable that
        holds it (default ``LABEL_STUDIO_API_KEY``), so no secret sits in the config.
    project: a project id (int) to use, or a title to find or create (default ``clicloop: <loop>``).
    kind: ``label`` (pick the label) or ``review`` (the model's label is pre-selected; confirm or fix).
    pre_annotations: send the model's prediction as a pre-annotation when the task carries one.
    hourly_wage, reward_per_task, currency: what an answer costs; in-house annotators are paid by
        the hour, so the reward is ``reward_per_task + hourly_wage * lead_time / 3600``.
    timeout_s, retry_for_s: per-request timeout, and how long Label Studio may be down before
        dispatch/collect give up (the loop then stops; run it again to resume).
    """

    confidential = True
    reads_ground_truth = False

    def __init__(self, url: str | None = None, api_key: str | None = None, api_key_env: str = "LABEL_STUDIO_API_KEY",
                 project: int | str | None = None, kind: str = "label", pre_annotations: bool = False,
                 hourly_wage: float | None = None, reward_per_task: float = 0.0, currency: str = "EUR",
                 timeout_s: float = 30.0, retry_for_s: float = 120.0):
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

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self, context: BackendContext) -> None:
        self._validate()
        url = self.url or os.environ.get("LABEL_STUDIO_URL")
        key = self.api_key or os.environ.get(self.api_key_env)
        if not url:
            raise LabelStudioError("labelstudio backend: give params.url or set LABEL_STUDIO_URL")
        if not key:
            raise LabelStudioError(f"labelstudio backend: give params.api_key or set the environment variable {self.api_key_env}")
        self.context_ = context
        self.client_ = LabelStudioClient(url, key, timeout_s=self.timeout_s, retry_for_s=self.retry_for_s)
        self.project_id_ = self._project(context)
        self.prefix_ = f"{context.loop}/"
        self.task_ids_: dict[str, int] = {}
        self.emitted_: set[tuple[str, str, str]] = set()
        self._refresh_task_ids()

    def _validate(self) -> None:
        if self.kind not in ("label", "review"):
            raise LabelStudioError(f"labelstudio backend: kind must be 'label' or 'review', not {self.kind!r}")
        if self.hourly_wage is not None and self.hourly_wage < 0 or self.reward_per_task < 0:
            raise LabelStudioError("labelstudio backend: hourly_wage and reward_per_task must not be negative")

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

    def expected_cost_per_task(self) -> float | None:
        return None if self.hourly_wage else self.reward_per_task

    def close(self) -> None:
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
        """Answers for ``tasks``, plus corrections to any earlier answer of this loop."""
        wanted = {t.key for t in tasks}
        answers: list[Answer] = []
        marks: list[tuple[int, dict[str, Any], int]] = []
        for ls_task in self.client_.iter_tasks(self.project_id_):
            key = (ls_task.get("data") or {}).get("clicloop_key")
            if not isinstance(key, str) or not key.startswith(self.prefix_):
                continue
            self.task_ids_.setdefault(key, int(ls_task["id"]))
            meta = ls_task.get("meta") or {}
            current = min(ls_task.get("annotations") or [], key=lambda a: a["id"], default=None)
            reported = meta.get("clicloop_reported")
            if key in wanted:
                if current is not None:
                    answers.append(self._answer(key, current, "created", str(current.get("created_at", ""))))
                    if reported != current["id"]:
                        marks.append((int(ls_task["id"]), meta, int(current["id"])))
                continue
            if reported is None:
                continue  # never reported: nothing to correct
            if current is None:
                answers.append(self._deleted(key, reported))
            elif current["id"] != reported:
                answers.append(self._correction(key, current, f"{current['id']}@{current.get('updated_at')}"))
                marks.append((int(ls_task["id"]), meta, int(current["id"])))
            elif _changed(current):
                answers.append(self._correction(key, current, str(current.get("updated_at"))))
        for task_id, meta, annotation_id in marks:
            self.client_.update_task(task_id, meta={**meta, "clicloop_reported": annotation_id})
        fresh = [a for a in answers if (a.task_key, a.event, a.version) not in self.emitted_ or a.event == "created"]
        self.emitted_.update((a.task_key, a.event, a.version) for a in fresh if a.event != "created")
        return fresh

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
        lead = annotation.get("lead_time")
        active = float(lead) if isinstance(lead, (int, float)) else 0.0
        reward = self.reward_per_task + (self.hourly_wage or 0.0) * max(active, 0.0) / 3600
        return Answer(
            task_key=key, worker=f"labelstudio-user-{annotation.get('completed_by')}", label=annotation_label(annotation),
            active_s=active, reward=round(reward, 6), fee=0.0, currency=self.currency,
            submitted_at=_epoch(annotation.get("created_at")), external_id=str(annotation["id"]), event=event, version=version,
        )

    def __repr__(self) -> str:
        return f"LabelStudioBackend(url={self.url!r}, project={self.project!r}, kind={self.kind!r})"


def _changed(annotation: dict[str, Any]) -> bool:
    created, updated = _epoch(annotation.get("created_at")), _epoch(annotation.get("updated_at"))
    return created is not None and updated is not None and updated - created > UPDATE_AFTER_S
