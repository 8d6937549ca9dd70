"""A Label Studio project's labeling config as clicloop sees it (:class:`Schema`), and what a
config change means: the labels added and removed between two schemas, and a fitted model seen
through the labels the project still has (:func:`restrict`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from clicloop.orchestrator.errors import ClicloopError


class LabelConfigError(ClicloopError):
    """The project's labeling config has no single-choice classification clicloop can serve."""


@dataclass(frozen=True)
class Schema:
    """What clicloop needs from a labeling config: the Choices control, its object and field."""

    from_name: str
    to_name: str
    field: str
    labels: tuple[str, ...]
    purpose: str


def parse_schema(xml: str) -> Schema:
    """Find the first ``<Choices>`` and the object (``<Text value="$field">``...) it labels."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise LabelConfigError(f"the labeling config is not valid XML: {e}") from e
    choices = next(iter(root.iter("Choices")), None)
    if choices is None or not choices.get("name") or not choices.get("toName"):
        raise LabelConfigError("the labeling config has no <Choices name=... toName=...>: clicloop serves classification")
    to_name = choices.get("toName", "").split(",")[0]
    target = next((el for el in root.iter() if el.get("name") == to_name and el is not choices), None)
    value = (target.get("value") or "") if target is not None else ""
    if not value.startswith("$"):
        raise LabelConfigError(f"the object {to_name!r} that the Choices label has no value=\"$field\"")
    labels = tuple(c.get("value") or c.get("alias") or "" for c in choices.iter("Choice"))
    if len(labels) < 2 or "" in labels:
        raise LabelConfigError("the Choices control needs at least two <Choice value=...>")
    header = next(iter(root.iter("Header")), None)
    purpose = (header.get("value") if header is not None else None) or "Label Studio project"
    return Schema(choices.get("name", ""), to_name, value[1:], labels, purpose)


@dataclass(frozen=True)
class LabelChange:
    """The difference between the schema in use and a newer one."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    other: bool  # the control, object, field or header changed

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.other)


def compare(old: Schema, new: Schema) -> LabelChange:
    """What changed from ``old`` to ``new`` (labels in the order the new config lists them)."""
    added = tuple(label for label in new.labels if label not in old.labels)
    removed = tuple(label for label in old.labels if label not in new.labels)
    other = (old.from_name, old.to_name, old.field, old.purpose) != (new.from_name, new.to_name, new.field, new.purpose)
    return LabelChange(added, removed, other or (not added and not removed and old.labels != new.labels))


class Restricted:
    """A fitted model seen through the current label set: the probabilities of labels removed from
    the project are dropped and the rest renormalised, so no prediction offers a removed label."""

    def __init__(self, model: Any, keep: Any):
        self.model = model
        self.keep = keep

    @property
    def classes_(self) -> Any:
        import numpy as np

        return np.asarray(self.model.classes_)[self.keep]

    def predict_proba(self, X: Any) -> Any:
        import numpy as np

        P = np.asarray(self.model.predict_proba(X), dtype=float)[:, self.keep]
        total = P.sum(axis=1, keepdims=True)
        return np.divide(P, total, out=np.full_like(P, 1.0 / P.shape[1]), where=total > 0)

    def __getattr__(self, name: str) -> Any:  # everything else a strategy may ask of the model
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def restrict(model: Any, labels: tuple[str, ...]) -> Any:
    """``model`` limited to ``labels``: itself when it knows no other label, None when it knows
    none of them (it cannot predict anything the project still allows)."""
    import numpy as np

    keep = np.isin(np.asarray(model.classes_).astype(str), list(labels))
    if keep.all():
        return model
    return Restricted(model, keep) if keep.any() else None
