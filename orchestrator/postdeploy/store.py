"""Ledger access for one deployment: model versions and promotions, predictions, triage
decisions, reviews and follower offsets. Every write is an idempotent insert (or, for a followed
file's offset, an upsert); sums and counts are left to SQL (see :mod:`.metrics`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, exists, func, select, update

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import chunks, insert_ignore
from clicloop.orchestrator.postdeploy.errors import PromotionError

SERVING_ACTIONS = ("deploy", "promote", "rollback")


def review_loop(deployment: str) -> str:
    """The ledger loop that holds a deployment's review work (apart from labeling loops)."""
    return f"{deployment}:review"


class DeploymentStore:
    """One deployment's records in an open :class:`~clicloop.orchestrator.ledger.Ledger`."""

    def __init__(self, ledger: Ledger, deployment: str):
        if not deployment or ":" in deployment:
            raise PromotionError(f"deployment name {deployment!r} must be non-empty and without ':'")
        self.ledger = ledger
        self.deployment = deployment

    @property
    def engine(self) -> Engine:
        return self.ledger.engine_

    # -- model versions and promotions -----------------------------------------------------------

    def register_version(self, version: str, labels: Sequence[str], *, parent: str | None = None, n_train: int = 0,
                         n_corrections: int = 0, artifact: str | None = None) -> bool:
        """Record a model version and its label set; True if new (the same version twice is a no-op)."""
        row = {"deployment": self.deployment, "version": version, "labels_json": json.dumps(sorted(set(labels))),
               "parent": parent, "n_train": n_train, "n_corrections": n_corrections, "artifact": artifact,
               "created_at": time.time()}
        with self.engine.begin() as conn:
            known = conn.execute(select(s.pd_models.c.version).where(
                s.pd_models.c.deployment == self.deployment, s.pd_models.c.version == version)).first()
            insert_ignore(conn, s.pd_models, [row])
        return known is None

    def versions(self) -> dict[str, dict[str, Any]]:
        """Every version: its labels, parent, training size, artifact and creation time."""
        m = s.pd_models.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(s.pd_models).where(m.deployment == self.deployment).order_by(m.created_at, m.version))
            return {r.version: {**r._mapping, "labels": json.loads(r.labels_json)} for r in rows}

    def promotions(self) -> list[dict[str, Any]]:
        p = s.pd_promotions.c
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(s.pd_promotions).where(p.deployment == self.deployment).order_by(p.seq))]

    def serving(self) -> str | None:
        """The version serving now: the latest deploy, promote or rollback."""
        p = s.pd_promotions.c
        with self.engine.connect() as conn:
            return conn.execute(select(p.version).where(p.deployment == self.deployment, p.action.in_(SERVING_ACTIONS))
                                .order_by(p.seq.desc()).limit(1)).scalar()

    def record_promotion(self, action: str, version: str, *, reason: str | None = None, error_current: float | None = None,
                         error_candidate: float | None = None, n_slice: int | None = None) -> int:
        """Append a deploy / promote / reject / rollback; returns its sequence number. Serving the
        version already serving changes nothing: a deploy of it records nothing (a deploy script
        run twice), a promote or rollback to it is refused (it recorded ``v2 -> v2``, and a later
        rollback went nowhere)."""
        if version not in self.versions():
            raise PromotionError(f"unknown model version {version!r} of deployment {self.deployment!r}; "
                                 f"known: {', '.join(self.versions()) or '(none)'}")
        p = s.pd_promotions.c
        if action in SERVING_ACTIONS and self.serving() == version:
            if action == "deploy":
                with self.engine.connect() as conn:
                    return int(conn.execute(select(func.max(p.seq)).where(p.deployment == self.deployment)).scalar_one())
            raise PromotionError(f"{version!r} is already serving deployment {self.deployment!r}: nothing recorded")
        for _ in range(5):  # two writers racing for one seq: the loser retries with the next
            previous = self.serving()
            with self.engine.begin() as conn:
                seq = int(conn.execute(select(func.coalesce(func.max(p.seq), 0)).where(p.deployment == self.deployment)).scalar_one()) + 1
                insert_ignore(conn, s.pd_promotions, [{
                    "deployment": self.deployment, "seq": seq, "action": action, "version": version, "previous": previous,
                    "reason": reason, "error_current": error_current, "error_candidate": error_candidate, "n_slice": n_slice,
                    "recorded_at": time.time()}])
                mine = conn.execute(select(p.version, p.action).where(p.deployment == self.deployment, p.seq == seq)).one()
            if tuple(mine) == (version, action):
                return seq
        raise PromotionError(f"could not record the {action} of {version!r}: too many concurrent promotions")

    # -- predictions -----------------------------------------------------------------------------

    def existing_predictions(self, ids: Iterable[str], content: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
        """The recorded predictions among ``ids``: each id's ``content`` columns."""
        c = s.pd_predictions.c
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(ids), 500):
                query = select(c.prediction_id, *(c[f] for f in content)).where(c.deployment == self.deployment,
                                                                                 c.prediction_id.in_(chunk))
                out.update((row[0], dict(zip(content, row[1:]))) for row in conn.execute(query))
        return out

    def predictions(self, *, status: str | None = "accepted", ids: Sequence[str] | None = None,
                    since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        """Predictions in time order (``since <= predicted_at < until``)."""
        c = s.pd_predictions.c
        where = [c.deployment == self.deployment]
        if status is not None:
            where.append(c.status == status)
        if since is not None:
            where.append(c.predicted_at >= since)
        if until is not None:
            where.append(c.predicted_at < until)
        query = select(s.pd_predictions).where(*where).order_by(c.predicted_at, c.prediction_id)
        with self.engine.connect() as conn:
            if ids is None:
                return [dict(r._mapping) for r in conn.execute(query)]
            rows = []
            for chunk in chunks(list(ids), 500):
                rows += [dict(r._mapping) for r in conn.execute(query.where(c.prediction_id.in_(chunk)))]
            return sorted(rows, key=lambda r: (r["predicted_at"], r["prediction_id"]))

    def quarantine_times(self, low: float, high: float) -> int:
        """Quarantine accepted predictions timed outside ``[low, high]`` (recorded before ingest
        checked the range: one such time made every triage fail); returns how many."""
        c = s.pd_predictions.c
        reason = ("time out of range (not an epoch second between 2000-01-01 and a day after now; milliseconds?): "
                  "send the prediction again in epoch seconds, under a new id")
        with self.engine.begin() as conn:
            return int(conn.execute(update(s.pd_predictions).where(
                c.deployment == self.deployment, c.status == "accepted", (c.predicted_at < low) | (c.predicted_at > high))
                .values(status="quarantined", reason=reason)).rowcount)

    # -- triage ----------------------------------------------------------------------------------

    def untriaged(self, policy: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Accepted predictions this policy has not decided on yet, oldest first."""
        c, t = s.pd_predictions.c, s.pd_triage.c
        decided = select(t.prediction_id).where(t.deployment == self.deployment, t.policy == policy)
        query = (select(s.pd_predictions).where(c.deployment == self.deployment, c.status == "accepted",
                                                c.prediction_id.not_in(decided))
                 .order_by(c.predicted_at, c.prediction_id))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def record_decisions(self, rows: Sequence[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            insert_ignore(conn, s.pd_triage, list(rows))

    def selected_on(self, policy: str, day: str) -> int:
        """How many predictions of ``day`` this policy already sent to review (daily budgets)."""
        t = s.pd_triage.c
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(
                t.deployment == self.deployment, t.policy == policy, t.day == day, t.review.is_(True))).scalar_one())

    def to_review(self, policy: str) -> list[dict[str, Any]]:
        """Predictions the policy selected that have no review yet, oldest first."""
        c, t, r = s.pd_predictions.c, s.pd_triage.c, s.pd_reviews.c
        reviewed = select(r.prediction_id).where(r.deployment == self.deployment)
        query = (select(s.pd_predictions, t.audit, t.priority).join(
            s.pd_triage, (t.deployment == c.deployment) & (t.prediction_id == c.prediction_id))
            .where(c.deployment == self.deployment, t.policy == policy, t.review.is_(True), c.prediction_id.not_in(reviewed))
            .order_by(t.audit.desc(), t.priority.desc(), c.predicted_at, c.prediction_id))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- reviews ---------------------------------------------------------------------------------

    def record_verdicts(self, rows: Sequence[tuple[int, dict[str, Any]]], conn: Connection | None = None) -> None:
        """Verdicts ``(batch, pd_reviews row)``, each with the label it gives its prediction (the
        first aggregation in the review loop), in ``conn``'s transaction (the answers') or a new one."""
        if conn is None:
            with self.engine.begin() as own:
                self.record_verdicts(rows, own)
            return
        now = time.time()
        insert_ignore(conn, s.pd_reviews, [row for _, row in rows])
        insert_ignore(conn, s.labels, [{"loop": review_loop(self.deployment), "item_id": row["prediction_id"], "revision": 0,
                                        "label": row["label"], "confidence": 1.0, "n_answers": 1, "round_no": batch,
                                        "recorded_at": now} for batch, row in rows])

    def unjudged(self) -> list[dict[str, Any]]:
        """Submitted review answers without their verdict or their label (a crash between two
        commits, before answers and verdicts shared one), with the prediction they judged."""
        a, rv, lab, p = s.assignments.c, s.pd_reviews.c, s.labels.c, s.pd_predictions.c
        loop = review_loop(self.deployment)
        no_verdict = ~exists().where(rv.task_key == a.task_key)
        no_label = ~exists().where(lab.loop == loop, lab.item_id == a.item_id, lab.revision == 0)
        query = (select(a.task_key, a.round_no, a.item_id, a.label, a.worker, a.submitted_at, a.recorded_at, p.model_version,
                        p.predicted_label, no_verdict.label("no_verdict"), no_label.label("no_label"))
                 .join(s.pd_predictions, (p.deployment == self.deployment) & (p.prediction_id == a.item_id))
                 .where(a.loop == loop, a.status == "submitted", no_verdict | no_label).order_by(a.task_key))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def verdict_counts(self, batch: int) -> dict[str, int]:
        """How many reviews of each verdict one batch (a review round) has."""
        rv, t = s.pd_reviews.c, s.tasks.c
        with self.engine.connect() as conn:
            return dict(conn.execute(select(rv.verdict, func.count()).join(s.tasks, t.key == rv.task_key)
                                     .where(t.loop == review_loop(self.deployment), t.round_no == batch).group_by(rv.verdict)).all())

    def reviews(self) -> list[dict[str, Any]]:
        r = s.pd_reviews.c
        with self.engine.connect() as conn:
            return [dict(x._mapping) for x in conn.execute(
                select(s.pd_reviews).where(r.deployment == self.deployment).order_by(r.reviewed_at, r.task_key))]

    # -- followed files --------------------------------------------------------------------------

    def offset(self, path: str) -> tuple[str, int] | None:
        o = s.pd_offsets.c
        with self.engine.connect() as conn:
            row = conn.execute(select(o.fingerprint, o.offset).where(o.deployment == self.deployment, o.path == path)).first()
        return None if row is None else (row.fingerprint, int(row.offset))

    def save_offset(self, path: str, fingerprint: str, offset: int) -> None:
        o = s.pd_offsets.c
        with self.engine.begin() as conn:
            insert_ignore(conn, s.pd_offsets, [{"deployment": self.deployment, "path": path, "fingerprint": fingerprint,
                                                "offset": offset, "updated_at": time.time()}])
            conn.execute(update(s.pd_offsets).where(o.deployment == self.deployment, o.path == path)
                         .values(fingerprint=fingerprint, offset=offset, updated_at=time.time()))

    def review_spent(self) -> dict[str, float]:
        """Review answers, cost and human hours so far (the review loop's accounting, in SQL)."""
        from clicloop.orchestrator.ledger import accounting

        return accounting.spent(self.engine, review_loop(self.deployment))
