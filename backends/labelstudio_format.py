"""What Label Studio's JSON means for clicloop: the labeling config built from a loop's label
set, the label of a choices annotation, and Label Studio's timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from xml.sax.saxutils import quoteattr

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


def stamp(stamp: str | None) -> str:
    """A Label Studio timestamp in one canonical form (UTC, microseconds), so that a version
    read from a webhook payload equals the one read by polling."""
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone(timezone.utc).isoformat(timespec="microseconds")
    except ValueError:
        return str(stamp)


def epoch(stamp: str | None) -> float | None:
    """Epoch seconds of a Label Studio timestamp; None when absent or unreadable."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def result_problem(result: Any, where: str = "annotation.result") -> str | None:
    """Why an annotation's ``result`` is not what Label Studio writes (a list of region objects; a
    choices region's ``value`` an object whose ``choices`` is a list of label strings), or None."""
    from clicloop.orchestrator.crowd.plausibility import show

    if result is None:
        return None
    if not isinstance(result, list):
        return f"{where} must be a list of regions, not {type(result).__name__}"
    for i, region in enumerate(result):
        if not isinstance(region, dict):
            return f"{where}[{i}] must be an object, not {type(region).__name__}"
        if region.get("type") != "choices":
            continue
        value = region.get("value")
        if not isinstance(value, dict):
            return f"{where}[{i}].value must be an object with 'choices', not {show(value)}"
        chosen = value.get("choices", [])
        if not isinstance(chosen, list) or not all(isinstance(c, str) for c in chosen):
            return f"{where}[{i}].value.choices must be a list of label strings, not {show(chosen)}"
    return None


def user_problem(completed_by: Any, where: str = "annotation.completed_by") -> str | None:
    """Why ``completed_by`` names no annotator (an integer user id, or an object with one), or None:
    answers without one would all count as one person's."""
    from clicloop.orchestrator.crowd.plausibility import show

    person = user_id(completed_by)
    if isinstance(person, bool) or not isinstance(person, (int, str)) or person == "":
        return f"{where} must be the annotator's user id (an integer, or an object with an integer 'id'), not {show(completed_by)}"
    return None


def annotation_label(annotation: dict[str, Any], from_name: str = FROM_NAME) -> str | None:
    """The chosen label of a choices annotation; None if skipped, empty or unreadable (see
    :func:`result_problem`: a string ``choices`` is not read as its first character)."""
    if annotation.get("was_cancelled") or result_problem(annotation.get("result")):
        return None
    for region in annotation.get("result") or []:
        if region.get("from_name") == from_name and region.get("type") == "choices":
            chosen = region["value"].get("choices") or []
            return chosen[0] if chosen else None
    return None


def changed(annotation: dict[str, Any]) -> bool:
    """Whether an annotation was edited after it was created."""
    created, updated = epoch(annotation.get("created_at")), epoch(annotation.get("updated_at"))
    return created is not None and updated is not None and updated - created > UPDATE_AFTER_S


def user_id(completed_by: Any) -> Any:
    """The annotator's user id: task lists give it bare, the task detail as a user object."""
    return completed_by.get("id", completed_by.get("email")) if isinstance(completed_by, dict) else completed_by
