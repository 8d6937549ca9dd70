"""Ingest production predictions: validate, quarantine, de-duplicate, record.

The same :class:`Ingestor` serves the Python call, the JSONL follower and the HTTP endpoint.
Malformed records are rejected with a reason and counted in ``pd_rejects`` (keyed so a replay is
not counted twice); a record for an unknown model version or a label outside that version's label
set is kept with status ``quarantined``; a prediction id seen before is a duplicate, not an error, when the record says the same; one that
says something else is rejected (the first record is kept).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import insert_ignore, storable
from clicloop.orchestrator.postdeploy.records import PredictionRecord, parse_record
from clicloop.orchestrator.postdeploy.store import DeploymentStore

SOURCES = ("python", "file", "http")


@dataclass
class IngestResult:
    """What one call did: new accepted and quarantined rows, duplicates, rejects with reasons
    (``(position, reason)``; the position is the index in the batch, or, with ``position ==
    "line"``, the 1-based line of a followed file); ``unfinished_bytes``: a followed file's bytes
    after its last newline, a line left for a later read (a writer may still be writing it)."""

    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    position: str = "index"
    unfinished_bytes: int = 0

    def add(self, other: IngestResult, offset: int = 0) -> None:
        self.accepted += other.accepted
        self.quarantined += other.quarantined
        self.duplicates += other.duplicates
        self.rejected += [(i + offset, r) for i, r in other.rejected]
        self.unfinished_bytes = other.unfinished_bytes  # the latest read's

    def as_dict(self) -> dict[str, Any]:
        out = {"accepted": self.accepted, "quarantined": self.quarantined, "duplicates": self.duplicates,
               "rejected": len(self.rejected), "errors": [{self.position: i, "reason": r} for i, r in self.rejected[:100]]}
        if self.unfinished_bytes:
            out["unfinished_line_bytes"] = self.unfinished_bytes
        return out


class Ingestor:
    """Records predictions of one deployment. Thread-safe (one writer at a time per process)."""

    def __init__(self, store: DeploymentStore):
        self.store = store
        self._labels: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def _labels_of(self, version: str) -> frozenset[str] | None:
        if version not in self._labels:
            self._labels = {v: frozenset(info["labels"]) for v, info in self.store.versions().items()}
        return self._labels.get(version)

    def _quarantine_reason(self, record: PredictionRecord) -> str | None:
        labels = self._labels_of(record.model_version)
        if labels is None:
            return f"unknown model version {record.model_version!r}"
        if record.predicted_label not in labels:
            return f"label {record.predicted_label!r} is not in the label set of {record.model_version!r}"
        extra = sorted(set(record.probabilities or ()) - labels)
        if extra:
            return f"probabilities name labels outside the label set of {record.model_version!r}: {extra[:5]}"
        return None

    def ingest(self, raws: Sequence[Any], source: str = "python", *, reject_keys: Sequence[str] | None = None) -> IngestResult:
        """Validate and record a batch. ``reject_keys`` (the follower's ``path@offset``) key the
        rejects; otherwise a reject is keyed by a hash of its content."""
        result, now = IngestResult(), time.time()
        rows: dict[str, dict[str, Any]] = {}
        first_at: dict[str, int] = {}  # each id's position in the batch
        repeats: list[tuple[int, dict[str, Any]]] = []  # an id again in the same batch
        rejects: list[dict[str, Any]] = []

        def reject(i: int, reason: str) -> None:
            result.rejected.append((i, reason))
            key = reject_keys[i] if reject_keys is not None else f"{source}:{_digest(raws[i])}"
            rejects.append({"key": storable(key)[:400], "deployment": self.store.deployment, "source": source,
                            "reason": storable(reason)[:2000],
                            "raw": _text(raws[i])[:2000], "recorded_at": now})

        def again(first: dict[str, Any], row: dict[str, Any], i: int) -> None:
            reason = _changed(first, row)
            if reason is None:
                result.duplicates += 1  # a replay
            else:
                reject(i, reason)

        for i, raw in enumerate(raws):
            record = parse_record(raw)
            if isinstance(record, str):
                reject(i, record)
                continue
            row = _row(self.store.deployment, record, source, self._quarantine_reason(record), now)
            if record.id in rows:
                repeats.append((i, row))
                continue
            rows[record.id], first_at[record.id] = row, i
        with self._lock:
            seen = self.store.existing_predictions(rows, content=CONTENT)
            for pid, stored in seen.items():
                again(stored, rows[pid], first_at[pid])
            for i, row in repeats:  # compared with the record kept: the recorded one, else the batch's first
                again(seen.get(row["prediction_id"], rows[row["prediction_id"]]), row, i)
            new = [r for pid, r in rows.items() if pid not in seen]
            with self.store.engine.begin() as conn:
                insert_ignore(conn, s.pd_predictions, new)
                insert_ignore(conn, s.pd_rejects, rejects)
            lost = self._lost_races(new, first_at, reject)  # another process recorded some ids meanwhile
            if lost:
                new = [r for r in new if r["prediction_id"] not in lost]
                with self.store.engine.begin() as conn:
                    insert_ignore(conn, s.pd_rejects, rejects)
        result.quarantined = sum(r["status"] == "quarantined" for r in new)
        result.accepted = len(new) - result.quarantined
        return result

    def _lost_races(self, new: list[dict[str, Any]], first_at: dict[str, int], reject: Any) -> set[str]:
        """Ids of ``new`` another process (a second server, ``deploy ingest --follow``) recorded
        with other content between the check and the insert: each is rejected as any changed
        record is (its insert did nothing; both processes answered "accepted" and one content
        vanished without a trace)."""
        stored = self.store.existing_predictions([r["prediction_id"] for r in new], content=CONTENT)
        lost = set()
        for row in new:
            reason = _changed(stored.get(row["prediction_id"], row), row)
            if reason is not None:
                reject(first_at[row["prediction_id"]], reason)
                lost.add(row["prediction_id"])
        return lost

    def counts(self) -> dict[str, int]:
        """Rows recorded so far: accepted, quarantined, rejected (SQL counts)."""
        p, r = s.pd_predictions.c, s.pd_rejects.c
        with self.store.engine.connect() as conn:
            by_status = dict(conn.execute(select(p.status, func.count()).where(p.deployment == self.store.deployment)
                                          .group_by(p.status)).all())
            rejected = conn.execute(select(func.count()).where(r.deployment == self.store.deployment)).scalar_one()
        return {"accepted": int(by_status.get("accepted", 0)), "quarantined": int(by_status.get("quarantined", 0)),
                "rejected": int(rejected)}


CONTENT = ("model_version", "text", "features_json", "predicted_label", "confidence", "proba_json", "predicted_at",
           "feedback", "rephrasing")  # what a record says: the same id saying other things is not a replay
FIELD_NAMES = {"features_json": "features", "proba_json": "probabilities", "predicted_at": "time"}


def _changed(first: dict[str, Any], again: dict[str, Any]) -> str | None:
    """None when ``again`` says what ``first`` (a recorded prediction of the same id) says (a
    replay); else why it is rejected: a prediction id names one prediction, and feedback sent
    after its prediction was recorded is not taken."""
    changed = [f for f in CONTENT if not _same(f, first[f], again[f])]
    if not changed:
        return None
    late = " (feedback is taken only in the prediction's own record)" if set(changed) <= {"feedback", "rephrasing"} else ""
    return (f"id: prediction {again['prediction_id']!r} was recorded before with another "
            f"{', '.join(FIELD_NAMES.get(f, f) for f in changed)}; the first record is kept{late}: a changed "
            "prediction needs a new id")


def _same(field: str, a: Any, b: Any) -> bool:
    """Two recorded values of ``field`` say the same: JSON fields compare as data (a retry may send
    the probabilities' keys in another order)."""
    if a == b:
        return True
    if field in ("proba_json", "features_json") and isinstance(a, str) and isinstance(b, str):
        try:
            return json.loads(a) == json.loads(b)
        except ValueError:
            return False
    return False


def _row(deployment: str, r: PredictionRecord, source: str, reason: str | None, now: float) -> dict[str, Any]:
    return {
        "deployment": deployment, "prediction_id": r.id, "model_version": r.model_version, "text": r.text,
        "features_json": None if r.features is None else json.dumps(r.features),
        "predicted_label": r.predicted_label, "confidence": r.score,
        "proba_json": None if r.probabilities is None else json.dumps(r.probabilities),
        "predicted_at": r.time, "feedback": r.feedback, "rephrasing": r.rephrasing, "source": source,
        "status": "quarantined" if reason else "accepted", "reason": reason, "recorded_at": now,
    }


def _text(raw: Any) -> str:
    """A rejected input as text any database keeps (PostgreSQL refuses NUL and lone surrogates:
    the reject row failed, and with it the batch)."""
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = json.dumps(raw, sort_keys=True, default=str)
        except RecursionError:
            return f"<a {type(raw).__name__} nested too deeply to keep>"
        except (TypeError, ValueError):
            text = repr(raw)
    return storable(text)


def _digest(raw: Any) -> str:
    return hashlib.sha256(_text(raw).encode("utf-8", "replace")).hexdigest()[:32]


def ingest(ledger: Any, deployment: str, records: Sequence[Any]) -> IngestResult:
    """The Python call: ``ingest(ledger, "assistant", [{"id": ..., ...}, ...])`` on an open ledger."""
    return Ingestor(DeploymentStore(ledger, deployment)).ingest(records, "python")
